"""arcface: ArcFace face recognition — detect, align, embed, verify, identify; train and evaluate.

Public API (imports are lazy so that ``import arcface`` stays light)::

    from arcface import FaceAnalyzer
    fa = FaceAnalyzer()                      # default pack buffalo_sc, offline
    result = fa.verify("a.jpg", "b.jpg")     # cosine similarity, decision, threshold used

Conventions: images are uint8 RGB ``(H, W, 3)``; embeddings are float32 L2-normalised ``(N, 512)``;
similarities and thresholds are cosine in ``[-1, 1]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "FaceAnalyzer": "arcface.pipeline",
    "AnalysisBatch": "arcface.pipeline",
    "Detector": "arcface.detect",
    "Detections": "arcface.detect",
    "Embedder": "arcface.embed",
    "EmbeddingContract": "arcface.gallery",
    "parse_model": "arcface.models",
    "resolve_pack": "arcface.models",
    "resolve_embedder": "arcface.models",
    "Face": "arcface.face",
    "largest_face": "arcface.face",
    "load_pack": "arcface.models",
    "Pack": "arcface.models",
    "load_image": "arcface.imageio",
    "align_faces": "arcface.align",
    "ModelSpec": "arcface.spec",
    "VerifyResult": "arcface.verify",
    "cosine_similarity": "arcface.verify",
    "Gallery": "arcface.gallery",
}

__all__ = [
    "AnalysisBatch",
    "Detections",
    "Detector",
    "Embedder",
    "EmbeddingContract",
    "Face",
    "FaceAnalyzer",
    "Gallery",
    "ModelSpec",
    "Pack",
    "VerifyResult",
    "__version__",
    "align_faces",
    "cosine_similarity",
    "largest_face",
    "load_image",
    "load_pack",
    "parse_model",
    "resolve_embedder",
    "resolve_pack",
]

if TYPE_CHECKING:  # pragma: no cover
    from arcface.align import align_faces
    from arcface.face import Face, largest_face
    from arcface.gallery import Gallery
    from arcface.imageio import load_image
    from arcface.models import Pack, load_pack, parse_model, resolve_embedder, resolve_pack
    from arcface.pipeline import AnalysisBatch, FaceAnalyzer
    from arcface.spec import ModelSpec
    from arcface.verify import VerifyResult, cosine_similarity


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'arcface' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
