"""Glue between photos and the gallery: run the face analyzer, pick faces, collect embeddings.

Uses :class:`arcface.pipeline.FaceAnalyzer` (duck-typed: ``analyze(image_rgb) -> list[Face]`` with
``bbox`` ``(4,)`` x1, y1, x2, y2 in pixels, ``score`` and a unit ``embedding``) and
:func:`arcface.imageio.load_image` (path or bytes -> uint8 RGB), both imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import NoFaceError


def load_rgb(image: Any) -> np.ndarray:
    """A uint8 RGB ``(H, W, 3)`` array from a path, bytes or an array (returned as is)."""
    if isinstance(image, np.ndarray):
        return image
    from arcface.imageio import load_image

    return load_image(image)


def describe(image: Any, i: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image #{i}"


def box_area(face: Any) -> float:
    x1, y1, x2, y2 = (float(v) for v in np.asarray(face.bbox).reshape(-1)[:4])
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def largest_face(faces: Sequence[Any]) -> Any | None:
    """The face with the largest box (ties: higher detection score); ``None`` when empty."""
    if not faces:
        return None
    return max(faces, key=lambda f: (box_area(f), float(getattr(f, "score", 0.0))))


def embed_largest_faces(analyzer: Any, images: Sequence[Any]) -> np.ndarray:
    """Embeddings ``(len(images), D)`` of the largest face of each photo.

    Raises :class:`NoFaceError` naming the first photo in which no face is found.
    """
    if not images:
        raise NoFaceError("no photos given")
    rows = []
    for i, image in enumerate(images):
        face = largest_face(analyzer.analyze(load_rgb(image)))
        if face is None:
            raise NoFaceError(f"no face found in {describe(image, i)}")
        rows.append(np.asarray(face.embedding, np.float32).reshape(-1))
    return np.stack(rows)
