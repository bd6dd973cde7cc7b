"""1:1 verification: cosine similarity against a threshold calibrated per recognizer.

Thresholds are cosine similarities in ``[-1, 1]``; :mod:`arcface.thresholds` owns where they are stored and
which one applies. The squared-L2 distance of unit vectors is ``2 - 2*cos`` if you need to compare with tools
that use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcface.errors import InputError, NoFaceError
from arcface.face import SELECT_RULES, select_face, stage_phrase
from arcface.thresholds import Threshold, check_threshold


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
    threshold_provenance: str = field(repr=False)
    faces: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    face_a: Any = field(default=None, repr=False)
    face_b: Any = field(default=None, repr=False)

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


def verify_faces(
    faces_a,
    faces_b,
    threshold: Threshold | float,
    names=("a", "b"),
    pick: tuple[int | None, int | None] = (None, None),
    select: str = "largest",
) -> VerifyResult:
    """Decide on one face of each list (faces carry embeddings): the one ``select`` picks (a rule of
    :func:`arcface.face.select_face`: ``largest``, ``center``, ``center_largest``), or the one at index ``pick[i]``.

    ``threshold``: the recognizer's :class:`~arcface.thresholds.Threshold`, or a cosine given by the caller.
    Raises :class:`NoFaceError` for an empty list and :class:`InputError` for a pick out of range.
    """
    if select not in SELECT_RULES:
        raise InputError(f"face selection must be one of {', '.join(SELECT_RULES)}, got {select!r}")
    chosen, notes = [], []
    for faces, name, index in ((faces_a, names[0], pick[0]), (faces_b, names[1], pick[1])):
        if not faces:
            raise NoFaceError(f"no face found in {name}", image=name)
        if index is None:
            chosen.append(select_face(faces, select))
            if len(faces) > 1:
                notes.append(f"{len(faces)} faces in {name}: the {select.replace('_', '-')} face was used")
        elif 0 <= index < len(faces):
            chosen.append(faces[index])
            notes.append(f"face {index} of {len(faces)} in {name} was chosen")
        else:
            raise InputError(f"{name} has {len(faces)} faces: face index {index} is out of range")
    fa, fb = chosen
    if isinstance(threshold, Threshold):
        value, provenance = threshold.value, threshold.provenance
        if not threshold.calibrated:
            notes.append("threshold not calibrated for this recognizer")
    else:
        value, provenance = check_threshold(threshold), "given by the caller"
    notes += [
        f"the face of {n} was found by {stage_phrase(f.path)}" for f, n in zip(chosen, names) if f.found_by_fallback
    ]
    sim = float(np.dot(fa.embedding, fb.embedding))
    return VerifyResult(sim, sim >= value, value, provenance, (len(faces_a), len(faces_b)), notes, fa, fb)
