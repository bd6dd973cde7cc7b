"""Embedders: aligned 112x112 RGB face crops -> L2-normalised float32 embeddings."""

from arcface.embed.base import Embedder, l2_normalize

__all__ = ["Embedder", "l2_normalize"]
