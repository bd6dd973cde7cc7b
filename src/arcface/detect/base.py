"""Detector protocol and its plain-data result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from arcface.align import ARCFACE_TEMPLATE

#: The stages that can produce a face, in the order they are tried (``"center_crop"``: no detection at all, an
#: opt-in of :class:`arcface.pipeline.FaceAnalyzer`; landmarks are the template's, not measured).
PATHS: tuple[str, ...] = ("detector", "padded", "low_threshold", "center_crop")


@dataclass
class Detections:
    """Faces found in one image, sorted by descending score.

    Attributes:
        boxes: float32 ``(N, 4)`` boxes ``(x1, y1, x2, y2)`` in pixels of the input image.
        scores: float32 ``(N,)`` detection confidences in ``[0, 1]``.
        kps: float32 ``(N, 5, 2)`` landmarks (x, y) in pixels (left eye, right eye, nose, left mouth,
            right mouth), or ``None`` for a detector without keypoints.
        path: which stage found them (one of :data:`PATHS`): ``"detector"`` (the normal pass),
            ``"padded"`` (the photo again inside a border: a face that fills it), ``"low_threshold"`` (the
            candidates of both passes at the detector's lower fallback threshold).
    """

    boxes: np.ndarray
    scores: np.ndarray
    kps: np.ndarray | None
    path: str = "detector"

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, idx: np.ndarray) -> Detections:
        kps = None if self.kps is None else self.kps[idx]
        return Detections(self.boxes[idx], self.scores[idx], kps, self.path)

    @staticmethod
    def empty(with_kps: bool = True) -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32) if with_kps else None,
        )


@runtime_checkable
class Detector(Protocol):
    """Finds faces in uint8 RGB images ``(H, W, 3)``: what :class:`arcface.pipeline.FaceAnalyzer` uses.

    Attributes:
        has_kps: the detector gives the 5 landmarks (alignment needs them).
        prefers_batches: several images per model run are faster than one at a time (true on GPUs).
    Methods return :class:`Detections` in pixels of each input image, sorted by descending score.
    """

    has_kps: bool

    @property
    def prefers_batches(self) -> bool: ...

    def detect(self, image_rgb: np.ndarray) -> Detections: ...

    def detect_many(self, images_rgb: list[np.ndarray], batch_size: int = 8) -> list[Detections]: ...


def center_crop_detection(shape: tuple[int, int], fraction: float) -> Detections:
    """The landmark-free last resort: the central square of side ``fraction`` x the shorter side of an image of
    ``shape = (H, W)``, as one detection whose landmarks are the ArcFace template mapped onto that square (so the
    aligned crop is that square resized), score 0, path ``"center_crop"``."""
    h, w = shape
    side = max(1.0, fraction * min(h, w))
    x0, y0 = (w - side) / 2.0, (h - side) / 2.0
    kps = ARCFACE_TEMPLATE * (side / 112.0) + np.array([x0, y0], np.float32)
    box = np.array([[x0, y0, x0 + side, y0 + side]], np.float32)
    return Detections(box, np.zeros(1, np.float32), kps[None].astype(np.float32), "center_crop")
