"""One detected face as plain data, and the one rule that picks the largest face of a photo.

Every stage that needs "the face of this photo" (verify, embed, gallery enrolment, clustering, the
service, evaluation) uses :func:`largest_face`, so they all agree on which face that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from arcface.errors import NoFaceError


@dataclass
class Face:
    """One detected face.

    Attributes:
        bbox: float32 ``(4,)`` box ``(x1, y1, x2, y2)`` in pixels of the analysed image.
        score: detection confidence in ``[0, 1]``.
        kps: float32 ``(5, 2)`` landmarks (x, y) in pixels: left eye, right eye, nose, left and right
            mouth corners (image-left first).
        embedding: float32 ``(D,)`` L2-normalised embedding (``None`` when not computed).
        crop: uint8 ``(112, 112, 3)`` RGB aligned crop, kept only on request.
    """

    bbox: np.ndarray
    score: float
    kps: np.ndarray
    embedding: np.ndarray | None = None
    crop: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        x1, y1, x2, y2 = self.bbox
        return float(max(0.0, x2 - x1) * max(0.0, y2 - y1))

    def to_dict(self) -> dict:
        """JSON-able summary (no embedding, no crop)."""
        return {
            "bbox": [round(float(v), 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "kps": [[round(float(x), 2), round(float(y), 2)] for x, y in self.kps],
        }


def face_index(faces: Sequence[Face], face: Face) -> int:
    """Position of ``face`` in ``faces`` by identity (``list.index`` would compare the numpy fields and fail)."""
    return next(i for i, f in enumerate(faces) if f is face)


def largest_face(faces: Sequence[Face]) -> Face:
    """The face with the largest box (ties: the higher detection score); :class:`NoFaceError` when empty."""
    if not faces:
        raise NoFaceError("no face found")
    return max(faces, key=lambda f: (f.area, float(f.score)))
