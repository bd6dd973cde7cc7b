"""1:1 verification: cosine similarity against a threshold calibrated per recognizer.

Thresholds are cosine similarities in ``[-1, 1]`` and live as data in ``arcface/data/thresholds.json``,
keyed by the recognizer file's SHA-256, each with its provenance (which pairs, which false accept
rate). The squared-L2 distance of unit vectors is ``2 - 2*cos`` if you need to compare with tools that
use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from arcface.errors import InputError, NoFaceError
from arcface.face import largest_face

#: Used only for recognizers with no calibrated entry; a conservative value for ArcFace models.
FALLBACK_THRESHOLD = 0.30


@dataclass(frozen=True)
class Threshold:
    """A cosine decision threshold and where it came from."""

    value: float
    far: float | None
    provenance: str
    calibrated: bool


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("arcface").joinpath("data/thresholds.json").read_text(encoding="utf-8")
    return json.loads(text)


def threshold_for(recognizer_sha256: str | None) -> Threshold:
    """The calibrated threshold of a recognizer, or the fallback (``calibrated=False``)."""
    entry = _table().get("recognizers", {}).get(recognizer_sha256)
    if entry is None:
        return Threshold(FALLBACK_THRESHOLD, None, "uncalibrated fallback for ArcFace-style models", False)
    return Threshold(float(entry["threshold"]), entry.get("far"), entry["provenance"], True)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity in ``[-1, 1]`` of rows of ``a`` (N, D) and ``b`` (M, D) -> (N, M); 1-D vectors too.

    Rows need not be normalised. For unit vectors the squared L2 distance is ``2 - 2 * cosine``.
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if a.shape[-1] != b.shape[-1]:
        raise InputError(f"embedding dimensions differ: {a.shape[-1]} vs {b.shape[-1]}")
    an = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return an @ bn.T if an.ndim > 1 or bn.ndim > 1 else np.float32(an @ bn)


@dataclass
class VerifyResult:
    """Outcome of a 1:1 comparison.

    Attributes:
        similarity: cosine similarity in ``[-1, 1]`` of the two faces' embeddings.
        same: ``similarity >= threshold``.
        threshold: the cosine threshold used.
        threshold_provenance: where that threshold came from.
        faces: number of faces found in each input (the largest one was used).
    """

    similarity: float
    same: bool
    threshold: float
    threshold_provenance: str
    faces: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    face_a: Any = None
    face_b: Any = None

    def to_dict(self) -> dict:
        return {
            "similarity": round(float(self.similarity), 6),
            "same": bool(self.same),
            "threshold": float(self.threshold),
            "threshold_provenance": self.threshold_provenance,
            "faces": {"a": self.faces[0], "b": self.faces[1]},
            "face_a": self.face_a.to_dict() if self.face_a is not None else None,
            "face_b": self.face_b.to_dict() if self.face_b is not None else None,
            "notes": self.notes,
        }


def verify_faces(faces_a, faces_b, pack, threshold: float | None = None, names=("a", "b")) -> VerifyResult:
    """Decide on the largest face of each list (faces carry embeddings)."""
    for faces, name in ((faces_a, names[0]), (faces_b, names[1])):
        if not faces:
            raise NoFaceError(f"no face found in {name}", image=name)
    fa, fb = largest_face(faces_a), largest_face(faces_b)
    notes = [
        f"{len(f)} faces in {n}: the largest was used"
        for f, n in ((faces_a, names[0]), (faces_b, names[1]))
        if len(f) > 1
    ]
    if threshold is None:
        t = threshold_for(pack.recognizer_sha256)
        value, provenance = t.value, t.provenance
        if not t.calibrated:
            notes.append("threshold not calibrated for this recognizer")
    else:
        if not -1.0 <= threshold <= 1.0:
            raise InputError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        value, provenance = float(threshold), "given by the caller"
    sim = float(np.dot(fa.embedding, fb.embedding))
    return VerifyResult(sim, sim >= value, value, provenance, (len(faces_a), len(faces_b)), notes, fa, fb)
