"""Aligned face crops for parity checks and int8 calibration.

Every crop is ``uint8`` ``(112, 112, 3)`` **RGB** in ``[0, 255]``, aligned to the ArcFace 5-point template by
the default pack's SCRFD detector and similarity warp (:class:`arcface.pipeline.FaceAnalyzer`), i.e. exactly
what a recognizer sees in the library's own pipeline.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from arcface.errors import InputError, ModelError
from arcface.face import largest_face

log = logging.getLogger(__name__)

CROP_SIZE = 112
WHEEL_PHOTOS = ("players.jpg", "gdp.jpg", "yaoming.jpg")


def _analyzer():
    from arcface.pipeline import FaceAnalyzer

    return FaceAnalyzer(det_size=640)


def crops_from_images(paths: list[Path], limit: int | None = None, largest_only: bool = False) -> np.ndarray:
    """Aligned crops of the faces in ``paths``.

    An image that already measures 112x112 is taken as an aligned crop as it is; any other image goes
    through detection + alignment (all faces, or only the largest with ``largest_only``).

    Returns:
        uint8 ``(N, 112, 112, 3)`` RGB (``N`` may be 0), at most ``limit`` crops.
    """
    from arcface.imageio import load_image

    out: list[np.ndarray] = []
    analyzer = None
    for p in paths:
        if limit is not None and len(out) >= limit:
            break
        img = load_image(p)
        if img.shape[:2] == (CROP_SIZE, CROP_SIZE):
            out.append(img[None])
            continue
        analyzer = analyzer or _analyzer()
        faces = analyzer.analyze(img, with_crops=True, embed=False)
        if largest_only and faces:
            faces = [largest_face(faces)]
        out.extend(f.crop[None] for f in faces if f.crop is not None)
    if not out:
        return np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    crops = np.concatenate(out)
    return crops[:limit] if limit is not None else crops


def crops_from_dir(directory: str | os.PathLike, limit: int = 256) -> np.ndarray:
    """Aligned crops from every image under ``directory`` (recursively, sorted), at most ``limit``.

    Raises:
        InputError: the folder does not exist or yields no face.
    """
    from arcface.imageio import iter_image_files

    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: calibration folder not found")
    crops = crops_from_images(iter_image_files([d]), limit=limit)
    if len(crops) == 0:
        raise InputError(f"{d}: no image with a detectable face (or 112x112 aligned crop) found")
    return crops


def wheel_photo_paths() -> list[Path]:
    """The sample photos shipped beside the default pack's model files (may be empty)."""
    from arcface.models.packs import builtin_dir

    d = builtin_dir()
    if d is None:
        return []
    return [d / n for n in WHEEL_PHOTOS if (d / n).is_file()]


@lru_cache(maxsize=4)
def _reference(n: int) -> np.ndarray:
    paths = wheel_photo_paths()
    try:
        crops = crops_from_images(paths, limit=n)
    except (InputError, ModelError) as exc:
        log.warning("no real face crops available (%s); using random pixels", exc)
        crops = np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    if len(crops) < n:
        rng = np.random.default_rng(0)
        pad = rng.integers(0, 256, (n - len(crops), CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
        crops = np.concatenate([crops, pad])
    crops.setflags(write=False)
    return crops


def reference_crops(n: int = 16) -> np.ndarray:
    """``n`` real aligned crops from the default pack's sample photos, padded with random pixels if too few.

    The result is cached and read-only. uint8 ``(n, 112, 112, 3)`` RGB.
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    return _reference(int(n))
