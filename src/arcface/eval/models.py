"""Model resolution and batched embedding helpers shared by the benchmarks.

An *embedder* here is anything with ``embed(crops, flip=False) -> (N, D)`` where ``crops`` are ``uint8``
RGB ``(N, H, W, 3)`` aligned faces and the result is float32 and L2-normalised (see
:class:`arcface.embed.base.Embedder`). The pipeline modules are imported lazily so that the metric code
and its tests never need a model.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arcface.embed.base import l2_normalize
from arcface.errors import InputError


def resolve_analyzer(model: str | None = None, runtime: str = "onnxruntime", precision: str = "f32") -> Any:
    """``FaceAnalyzer`` for a pack name or pack directory (``None``: the default pack), on the given engine
    (default: the reference, ONNX Runtime f32); see :func:`arcface.models.parse_model` for the spellings."""
    from arcface.models import resolve_pack
    from arcface.pipeline import FaceAnalyzer

    return FaceAnalyzer(resolve_pack(model), runtime=runtime, precision=precision)


def resolve_embedder(model: str | None = None) -> Any:
    """Embedder for ``model`` (a pack, an ``.onnx`` recognizer or a torch checkpoint); this is
    :func:`arcface.models.resolve_embedder`, the resolver every command shares."""
    from arcface.models import resolve_embedder as resolve

    return resolve(model)


def model_label(model: str | None) -> str:
    """Short human label of a ``--model`` value (for tables and plot legends)."""
    if model is None:
        return "default pack"
    p = Path(model.partition(":")[2] if model.partition(":")[0] in ("pack", "onnx", "ckpt") else model)
    return p.stem if p.suffix else p.name or str(model)


def model_digest(model: str | None) -> str | None:
    """SHA-256 of a model file (``None`` for packs: their files are checked by the pack loader)."""
    from arcface.models import parse_model
    from arcface.models.packs import sha256_file

    if model is None:
        return None
    ref = parse_model(model)
    return sha256_file(ref.path) if ref.kind != "pack" and ref.path.is_file() else None


def input_size(embedder: Any) -> tuple[int, int]:
    """``(width, height)`` the embedder expects (112x112 when its spec does not say)."""
    spec = getattr(embedder, "spec", None)
    size = getattr(spec, "input_size", None)
    if not size:
        return (112, 112)
    return (int(size[0]), int(size[1]))


def fit_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB ``uint8`` crop to ``size`` = ``(width, height)`` when it differs (area/linear)."""
    h, w = img.shape[:2]
    if (w, h) == tuple(size):
        return img
    interp = cv2.INTER_AREA if w > size[0] else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)


def progress(iterable: Iterable, total: int | None, desc: str, enabled: bool) -> Iterable:
    """tqdm progress bar on stderr when ``enabled`` (tqdm is a core dependency)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", file=sys.stderr, leave=False)


def _batches(items: Iterable[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_crops(
    embedder: Any,
    crops: Iterable[np.ndarray],
    batch_size: int = 64,
    flip: bool = True,
    total: int | None = None,
    desc: str = "embedding",
    show_progress: bool = False,
) -> np.ndarray:
    """Embed an iterable of aligned RGB crops in batches; returns ``(N, D)`` float32, unit rows.

    Crops whose size differs from the embedder's input size are resized first. ``flip=True`` asks the
    embedder for flip test-time augmentation (sum of the crop's and its mirror's embeddings).
    """
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    size = input_size(embedder)
    out: list[np.ndarray] = []
    it = progress(crops, total, desc, show_progress)
    for batch in _batches(it, batch_size):
        x = np.stack([fit_crop(np.asarray(c, dtype=np.uint8), size) for c in batch])
        out.append(np.asarray(embedder.embed(x, flip=flip), dtype=np.float32))
    if not out:
        raise InputError("nothing to embed")
    return l2_normalize(np.concatenate(out))
