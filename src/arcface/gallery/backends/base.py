"""The vector-index protocol every gallery backend implements.

Vectors are float32 ``(N, D)`` with unit L2 norm; similarity is the inner product, which equals cosine
similarity for unit vectors (squared L2 distance is ``2 - 2 * cosine``). Each vector carries an int64
id chosen by the caller (the gallery's identity id). An index is a cache rebuilt from the gallery's
files, never the source of truth.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from arcface.errors import InputError


@runtime_checkable
class VectorIndex(Protocol):
    """Top-k maximum-inner-product search over id-tagged unit vectors."""

    #: short backend name ("numpy", "faiss", "milvus")
    kind: str
    dim: int

    def __len__(self) -> int: ...

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids`` (int64 ``(N,)``), replacing any vector already stored under an id."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Forget the vectors of ``ids``; unknown ids are ignored."""
        ...

    def reset(self) -> None:
        """Forget every vector."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each query, best first.

        Returns ``(similarities, ids)``: float32 and int64 arrays of shape ``(Q, k)``; where fewer than
        ``k`` vectors exist the tail holds similarity ``-inf`` and id ``-1``.
        """
        ...

    def close(self) -> None: ...


def check_vectors(vectors: np.ndarray, dim: int, what: str = "vectors") -> np.ndarray:
    """``vectors`` as C-contiguous float32 ``(N, dim)``; :class:`InputError` on a wrong shape/NaN."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise InputError(f"{what}: expected shape (N, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(x).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return np.ascontiguousarray(x)


def check_ids(ids: np.ndarray, n: int | None = None) -> np.ndarray:
    out = np.asarray(ids, dtype=np.int64).reshape(-1)
    if n is not None and out.shape[0] != n:
        raise InputError(f"ids: expected {n} ids, got {out.shape[0]}")
    if out.size and out.min() < 0:
        raise InputError("ids: must be non-negative")
    if np.unique(out).size != out.size:
        raise InputError("ids: contain duplicates")
    return out


def empty_result(q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((q, k), -np.inf, np.float32), np.full((q, k), -1, np.int64)


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the ``k`` largest values of each row of ``sims`` ``(Q, N)``, best first.

    Returns ``(values, columns)`` of shape ``(Q, min(k, N))``; ``-inf`` entries sort last.
    """
    n = sims.shape[1]
    kk = min(k, n)
    if kk < n:
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
    else:
        top = np.broadcast_to(np.arange(n), (sims.shape[0], n))
    vals = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(top, order, axis=1)
