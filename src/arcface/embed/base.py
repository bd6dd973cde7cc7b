"""The embedder protocol shared by the ONNX and torch back ends."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from arcface.spec import ModelSpec


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Scale rows to unit L2 norm (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float32, copy=False)


@runtime_checkable
class Embedder(Protocol):
    """Maps aligned face crops to embeddings.

    ``embed(crops, flip=False)`` takes ``uint8`` RGB crops of shape ``(N, H, W, 3)`` (H, W from
    ``spec.input_size``, normally 112x112 aligned to the ArcFace template) and returns float32
    ``(N, D)`` L2-normalised embeddings. With ``flip=True`` the embedding of each crop is the sum of the
    raw embeddings of the crop and its horizontal mirror, then L2-normalised (flip test-time augmentation).
    """

    spec: ModelSpec

    @property
    def dim(self) -> int: ...

    def embed(self, crops: np.ndarray, flip: bool = False, batch_size: int = 128) -> np.ndarray: ...
