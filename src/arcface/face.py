"""One detected face as plain data, and the rules that pick "the face" of a photo.

Every stage that needs "the face of this photo" (verify, embed, gallery enrolment, clustering, the
service, evaluation, training-data alignment) uses :func:`largest_face` or :func:`select_face`, so they all
agree on which face that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

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
        path: the stage that produced the face (:data:`arcface.detect.base.PATHS`): ``"detector"``,
            ``"padded"``, ``"low_threshold"`` or ``"center_crop"`` (no detection: the opt-in last resort, with
            the template's landmarks and score 0).
        image_size: ``(width, height)`` in pixels of the analysed image (set by the pipeline; the centre rules
            of :func:`select_face` use it).
    """

    bbox: np.ndarray
    score: float
    kps: np.ndarray
    embedding: np.ndarray | None = None
    crop: np.ndarray | None = field(default=None, repr=False)
    path: str = "detector"
    image_size: tuple[int, int] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        box = ", ".join(f"{float(v):.1f}" for v in self.bbox)
        emb = "None" if self.embedding is None else f"<{len(self.embedding)}-d>"
        via = f", path={self.path!r}" if self.found_by_fallback else ""
        return f"Face(bbox=[{box}], score={float(self.score):.3f}, embedding={emb}{via})"

    @property
    def found_by_fallback(self) -> bool:
        """Whether a last-resort stage produced the face (:attr:`path` other than ``"detector"``): worth a look,
        such a stage runs only where the first pass found nothing and also finds the odd false face."""
        return self.path != "detector"

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
            "path": self.path,
        }


def face_index(faces: Sequence[Face], face: Face) -> int:
    """Position of ``face`` in ``faces`` by identity (``list.index`` would compare the numpy fields and fail)."""
    return next(i for i, f in enumerate(faces) if f is face)


def largest_face(faces: Sequence[Face]) -> Face:
    """The face with the largest box (ties: the higher detection score); :class:`NoFaceError` when empty."""
    if not faces:
        raise NoFaceError("no face found")
    return faces[select_index(np.stack([f.bbox for f in faces]), "largest", scores=[float(f.score) for f in faces])]


#: The rules of :func:`select_face`.
SelectRule = Literal["largest", "center", "center_largest"]
SELECT_RULES: tuple[str, ...] = ("largest", "center", "center_largest")


def select_index(
    boxes: np.ndarray, rule: str = "largest", image_size: tuple[int, int] | None = None, scores=None
) -> int:
    """Index of the box ``rule`` picks among ``(N, 4)`` boxes ``(x1, y1, x2, y2)`` in pixels (N >= 1): the
    arithmetic of :func:`select_face`, for callers holding plain detections. ``image_size``: ``(width,
    height)``, needed by the centre rules; ``scores`` break ties of ``largest``."""
    if rule not in SELECT_RULES:
        raise ValueError(f"unknown face selection rule {rule!r}; rules: {', '.join(SELECT_RULES)}")
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    if rule == "largest":
        tie = np.zeros(len(b)) if scores is None else np.asarray(scores, np.float64)
        return int(np.lexsort((-tie, -area))[0])
    if image_size is None:
        raise ValueError(f"face selection {rule!r} needs the image size")
    w, h = image_size
    off2 = ((b[:, 0] + b[:, 2]) / 2 - w / 2) ** 2 + ((b[:, 1] + b[:, 3]) / 2 - h / 2) ** 2
    if rule == "center":
        return int(np.lexsort((-area, np.round(off2, 6)))[0])
    return int(np.argmax(area - 2.0 * off2))


def nose_offset(kps: np.ndarray) -> float:
    """Head turn read from five landmarks (pixels, :class:`Face` order): the nose's horizontal offset from the eyes'
    midpoint over the eye distance, signed: positive when the nose lies to the image's right (the person turned to
    their left). Under 0.2 in magnitude for a frontal face, 0.27 and more for faces turned 60-90 degrees (CMU Face
    Images: medians +0.85 and -1.19 on its left and right views, all 156 straight ones under 0.2; see
    :mod:`arcface.eval.multi_pose`)."""
    k = np.asarray(kps, np.float64).reshape(5, 2)
    eye_d = float(np.hypot(*(k[1] - k[0]))) or 1e-6
    return float(k[2, 0] - (k[0, 0] + k[1, 0]) / 2) / eye_d


def stage_phrase(path: str) -> str:
    """How notes name the stage that produced a face (:attr:`Face.path`): ``"the low threshold stage"``."""
    return f"the {path.replace('_', ' ')} stage"


def select_face(faces: Sequence[Face], rule: str = "largest", image_size: tuple[int, int] | None = None) -> Face:
    """Pick one face by ``rule``.

    Args:
        faces: the detected faces (non-empty).
        rule: ``"largest"`` (largest box, see :func:`largest_face`), ``"center"`` (box centre nearest the image
            centre; ties: the larger box) or ``"center_largest"`` (box area minus twice the squared centre
            offset, in square pixels: the largest face, unless a smaller one sits much nearer the centre;
            insightface's rule).
        image_size: ``(width, height)`` in pixels of the analysed image, for the centre rules (default: the
            faces' own :attr:`Face.image_size`, set by the pipeline).
    Raises:
        NoFaceError: no faces; ValueError: an unknown rule or a centre rule without ``image_size``.
    """
    if rule not in SELECT_RULES:
        raise ValueError(f"unknown face selection rule {rule!r}; rules: {', '.join(SELECT_RULES)}")
    if not faces:
        raise NoFaceError("no face found")
    if rule == "largest":
        return largest_face(faces)  # needs no image size
    size = image_size if image_size is not None else faces[0].image_size
    return faces[select_index(np.stack([f.bbox for f in faces]), rule, size)]
