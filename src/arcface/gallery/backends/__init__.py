"""Vector-index backends of the gallery: ``numpy`` (exact baseline), ``faiss`` (embedded default),
``milvus`` (milvus-lite file or Milvus cluster). All implement :class:`VectorIndex`."""

from __future__ import annotations

import importlib.util
from typing import Any

from arcface.errors import InputError
from arcface.gallery.backends.base import VectorIndex
from arcface.gallery.backends.numpy_index import NumpyIndex

BACKENDS = ("auto", "numpy", "faiss", "milvus")


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def make_index(kind: str, dim: int, **options: Any) -> VectorIndex:
    """Create a backend by name. ``"auto"``: FAISS when installed, else numpy.

    ``options`` go to the backend's constructor (e.g. ``ann_threshold``/``ann`` for FAISS, ``uri``/
    ``collection`` for Milvus).
    """
    if kind == "auto":
        kind = "faiss" if faiss_available() else "numpy"
    if kind == "numpy":
        return NumpyIndex(dim, **options)
    if kind == "faiss":
        from arcface.gallery.backends.faiss_index import FaissIndex

        return FaissIndex(dim, **options)
    if kind == "milvus":
        from arcface.gallery.backends.milvus_index import MilvusIndex

        if "uri" not in options:
            raise InputError("milvus backend: needs a uri (a local .db file or http://host:19530)")
        return MilvusIndex(dim, **options)
    raise InputError(f"unknown gallery backend {kind!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "NumpyIndex", "VectorIndex", "faiss_available", "make_index"]
