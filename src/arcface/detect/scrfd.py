"""SCRFD / RetinaFace-style anchor-free ONNX detectors (insightface's output layouts).

Supported output layouts (``F`` feature levels, ``A`` anchors per location, outputs grouped as all
score maps, then all box maps, then all keypoint maps):

=========  ======================  ===  ===========
outputs    strides                 A    keypoints
=========  ======================  ===  ===========
6          8, 16, 32               2    no
9          8, 16, 32               2    yes
10         8, 16, 32, 64, 128      1    no
15         8, 16, 32, 64, 128      1    yes
=========  ======================  ===  ===========

Each level's outputs are ``(B, H*W*A, C)`` (or ``(H*W*A, C)`` for fixed batch-1 exports) with C = 1
(score after sigmoid), 4 (distances left, top, right, bottom in units of the stride) or 10 (keypoint
offsets in units of the stride). Anchor centres are ``(x*stride, y*stride)`` in row-major order, each
repeated A times.

The image is letterboxed: scaled to fit a canvas keeping its aspect ratio, pasted at the top-left corner of a
zero canvas; coordinates are mapped back by the same scale.

Multi-resolution detection: each photo is run on several canvases (by default the main ``input_size`` and a small
160x160 one, see ``sizes``); their faces, in pixels of the photo, are merged largest canvas first: a face keeps the
detection of the largest canvas that found it (its landmarks are the finest there, and on the main canvas they are
exactly those of a single-canvas pass, as insightface's ``FaceAnalysis`` computes them), and a smaller canvas only
adds faces that overlap none already kept. Merging by one NMS instead let the small canvas's coarser landmarks win
on most ordinary photos (154 of 177 faces of ../shared/data; genuine cosines 0.009 lower, insightface parity lost:
worst cosine 0.974). A small canvas sees a face that fills the photo at a size the model knows (on the 640 canvas
such a face is several hundred pixels wide and is missed); a large canvas (opt-in) keeps small faces of large photos
above the model's smallest anchors. Where no canvas finds a face, the photo is tried once more inside a zero border
(``pad_retry``: the *downscaled* photo, so memory stays the canvas's), then the candidates of those runs are re-read
at the lower ``fallback_threshold`` (no extra model run). :attr:`Detections.path` says which stage found the faces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from arcface.detect.base import Detections
from arcface.detect.nms import iou_matrix, nms
from arcface.errors import InputError, ModelError
from arcface.runtime import dynamic_batch, get_session
from arcface.spec import SCRFD_DETECTION, ModelSpec

_LAYOUTS: dict[int, tuple[tuple[int, ...], int, bool]] = {
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


#: Largest detector canvas side in pixels (a 4096x4096 canvas already needs about 250 MB as float input).
MAX_INPUT_SIDE = 4096
#: The small canvas of ``sizes="auto"``: a face that fills a photo is about this wide on it (measured on
#: ../shared/data: tight crops at 0.7-1.2x the face box and the AT&T crops are all found at 128-256; 160 costs
#: 0.8 ms against 8.9 ms for the 640 canvas on this AMD EPYC; see benchmarks/bench_hard_photos.py).
SMALL_CANVAS = 160
#: Default lower threshold of the last detection stage (candidates already computed, re-read).
FALLBACK_THRESHOLD = 0.3


def recognises(session) -> bool:
    """Whether an ONNX Runtime session has one of the SCRFD/RetinaFace output layouts above."""
    return len(session.get_outputs()) in _LAYOUTS


@dataclass(frozen=True)
class Letterbox:
    """Placement of an image on the detector canvas: ``canvas = image * scale + offset`` (pixels)."""

    scale: float
    width: int
    height: int
    offset: float = 0.0

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Canvas coordinates (any shape ending in x, y pairs) to pixels of the original image."""
        return (xy - self.offset) / self.scale


def letterbox(image_rgb: np.ndarray, size: tuple[int, int], pad: int = 0) -> tuple[np.ndarray, Letterbox]:
    """Scale ``image_rgb`` to fit ``size = (width, height)``, pad bottom/right with zeros.

    With ``pad > 0`` the canvas shows the image inside a zero border of ``pad`` pixels on every side
    (scaled like the image), as if the bordered image had been letterboxed; the border is drawn on the
    canvas, so a huge photo costs no full-resolution copy.
    """
    h, w = image_rgb.shape[:2]
    tw, th = size
    if pad <= 0:
        if h / w > th / tw:
            nh, nw = th, max(1, int(th * w / h))
        else:
            nw, nh = tw, max(1, int(tw * h / w))
        scale, off = nh / h, 0
    else:
        fit = min(tw / (w + 2 * pad), th / (h + 2 * pad))
        nw, nh = max(1, int(w * fit)), max(1, int(h * fit))
        off = min(int(round(pad * fit)), tw - nw, th - nh)
        scale = nh / h
    canvas = np.zeros((th, tw, 3), np.uint8)
    # the plain path stays bit-identical to insightface's letterbox; a large downscale for the retry averages
    interp = cv2.INTER_AREA if pad > 0 and nh < h // 2 else cv2.INTER_LINEAR
    canvas[off : off + nh, off : off + nw] = cv2.resize(image_rgb, (nw, nh), interpolation=interp)
    return canvas, Letterbox(scale, nw, nh, float(off))


class SCRFD:
    """SCRFD face detector on ONNX Runtime.

    Args:
        model_path: the ``.onnx`` file.
        spec: input conventions (default: RGB, ``(x - 127.5) / 128``).
        input_size: ``(width, height)`` of the canvas, each a multiple of 32 (default 640x640).
        score_threshold: minimum face confidence in ``[0, 1]``.
        nms_threshold: IoU above which a lower-scored overlapping box is dropped.
        max_faces: keep at most this many faces per image (largest boxes first); 0 = all.
        min_face_size: drop faces whose box is smaller than this many pixels on its shorter side.
        threads: ONNX Runtime intra-op threads (default: all cores).
        runtime, precision: the engine and its precision (see :mod:`arcface.runtime`).
        sizes: canvases of multi-resolution detection: ``"auto"`` (the main ``input_size`` canvas plus a
            160x160 one), ``"single"`` (the main canvas only), or square canvas sides (multiples of 32), e.g.
            ``(160, 640, 1280)`` for crowds in large photos. Each face comes from the largest canvas that found it.
        pad_retry: when no canvas finds a face, detect again on the main canvas with the image centred in a
            zero border of half its longer side (a face that fills the photo); coordinates are mapped back.
        fallback_threshold: when still nothing is found, keep the candidates of those runs scoring at least
            this (``None``: no such stage). The result's ``path`` says ``"low_threshold"``.
    """

    #: :meth:`detect_many` takes ``fallbacks`` (the pipeline passes it through; other detectors have no fallbacks).
    has_fallbacks = True

    def __init__(
        self,
        model_path: str | os.PathLike,
        spec: ModelSpec = SCRFD_DETECTION,
        input_size: tuple[int, int] | int = (640, 640),
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        max_faces: int = 0,
        min_face_size: float = 0.0,
        threads: int | None = None,
        pad_retry: bool = True,
        runtime: str = "onnxruntime",
        precision: str = "f32",
        sizes: str | tuple[int, ...] | list[int] = "auto",
        fallback_threshold: float | None = FALLBACK_THRESHOLD,
    ) -> None:
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        if any(not isinstance(v, int) or v <= 0 or v % 32 or v > MAX_INPUT_SIDE for v in input_size):
            raise InputError(
                f"detector input size must be multiples of 32 between 32 and {MAX_INPUT_SIDE}, got {input_size}"
            )
        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"score_threshold must lie in [0, 1], got {score_threshold}")
        if fallback_threshold is not None and not 0.0 <= fallback_threshold <= score_threshold:
            raise InputError(
                f"fallback_threshold must lie in [0, score_threshold={score_threshold}], got {fallback_threshold}"
            )
        self.fallback_threshold = None if fallback_threshold is None else float(fallback_threshold)
        self.spec = spec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_faces = int(max_faces)
        self.min_face_size = float(min_face_size)
        self.pad_retry = bool(pad_retry)
        self.sizes = self._canvases(sizes)
        self.model_path = str(model_path)
        self.session = get_session(model_path, threads, runtime=runtime, precision=precision, pixels=spec)
        #: the session takes the letterboxed uint8 canvases as they are (OpenVINO converts them in the model)
        self._pixels = bool(getattr(self.session, "takes_pixels", False))
        self.input_name = spec.input_name or self.session.get_inputs()[0].name
        outputs = self.session.get_outputs()
        if len(outputs) not in _LAYOUTS:
            raise ModelError(
                f"{model_path}: {len(outputs)} outputs; not a SCRFD/RetinaFace layout (expected 6, 9, 10 or 15)"
            )
        self.output_names = [o.name for o in outputs]
        self.strides, self.num_anchors, self.has_kps = _LAYOUTS[len(outputs)]
        self.batched = dynamic_batch(self.session)
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}

    @property
    def prefers_batches(self) -> bool:
        """True on CUDA with a batch-capable model; on CPU one canvas per run is faster (measured: 4 images at
        640x640 take 111 ms as one batch of 4 and 86 ms one by one)."""
        return self.batched and "CUDAExecutionProvider" in self.session.get_providers()

    def _canvases(self, sizes: str | tuple[int, ...] | list[int]) -> tuple[tuple[int, int], ...]:
        """The ``(width, height)`` canvases of one detection pass, largest first."""
        if sizes == "auto":
            return (
                (self.input_size,)
                if min(self.input_size) <= SMALL_CANVAS
                else (self.input_size, (SMALL_CANVAS, SMALL_CANVAS))
            )
        if sizes == "single":
            return (self.input_size,)
        if isinstance(sizes, str) or not sizes:
            raise InputError(f"detector sizes must be 'auto', 'single' or canvas sides, got {sizes!r}")
        out = []
        for v in sizes:
            if not isinstance(v, int | np.integer) or v <= 0 or v % 32 or v > MAX_INPUT_SIDE:
                raise InputError(f"detector canvas sides must be multiples of 32 up to {MAX_INPUT_SIDE}, got {v!r}")
            out.append((int(v), int(v)))
        return tuple(sorted(set(out), key=lambda wh: -wh[0]))

    def _anchor_centers(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        c = self._centers.get(key)
        if c is None:
            ys, xs = np.mgrid[:height, :width]
            c = (np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
            if self.num_anchors > 1:
                c = np.repeat(c, self.num_anchors, axis=0)
            self._centers[key] = c
        return c

    def model_input(self, canvases: np.ndarray) -> np.ndarray:
        """What the session is fed for uint8 RGB canvases ``(N, H, W, 3)``: the canvases themselves where the
        session converts pixels in the model (OpenVINO), else :meth:`~arcface.spec.ModelSpec.preprocess`'s tensor."""
        return canvases if self._pixels else self.spec.preprocess(canvases)

    def _run(self, canvases: np.ndarray) -> list[np.ndarray]:
        blob = self.model_input(canvases)
        if self.batched or len(blob) == 1:
            outs = self.session.run(self.output_names, {self.input_name: blob})
            return [o if o.ndim == 3 else o[None] for o in outs]
        per = [self.session.run(self.output_names, {self.input_name: blob[i : i + 1]}) for i in range(len(blob))]
        return [np.concatenate([(p[k] if p[k].ndim == 3 else p[k][None]) for p in per]) for k in range(len(per[0]))]

    def _candidates(self, outs: list[np.ndarray], b: int, box: Letterbox, canvas: tuple[int, int], floor: float):
        """``(boxes, scores, kps)`` scoring at least ``floor`` in one canvas's outputs, in pixels of the image."""
        fmc = len(self.strides)
        tw, th = canvas
        all_scores, all_boxes, all_kps = [], [], []
        for level, stride in enumerate(self.strides):
            scores = outs[level][b].reshape(-1)
            keep = np.nonzero(scores >= floor)[0]
            if keep.size == 0:
                continue
            centers = self._anchor_centers(th // stride, tw // stride, stride)[keep]
            dist = outs[level + fmc][b][keep] * stride
            all_boxes.append(np.concatenate([centers - dist[:, :2], centers + dist[:, 2:4]], axis=1))
            all_scores.append(scores[keep])
            if self.has_kps:
                k = outs[level + 2 * fmc][b][keep].reshape(-1, 5, 2) * stride
                all_kps.append(centers[:, None, :] + k)
        if not all_scores:
            return None
        kps = box.to_image(np.concatenate(all_kps)) if self.has_kps else None
        return box.to_image(np.concatenate(all_boxes)), np.concatenate(all_scores).astype(np.float32), kps

    def decode_outputs(
        self, outs: list[np.ndarray], box: Letterbox, shape: tuple[int, int], canvas: tuple[int, int] | None = None
    ) -> Detections:
        """Faces of one image from this model's raw outputs on one canvas (``canvas``: its ``(width, height)``,
        default the main one), e.g. outputs computed by another runtime; NMS, clipping and size rules applied."""
        cand = self._candidates([o if o.ndim == 3 else o[None] for o in outs], 0, box, canvas or self.input_size,
                                self.score_threshold)  # fmt: skip
        return self._finish([cand], self.score_threshold, shape, "detector")

    def _finish(self, cands: list, threshold: float, shape: tuple[int, int], path: str) -> Detections:
        """The faces of one image from its candidates per canvas (``cands``, largest canvas first; ``None`` where a
        canvas had none) scoring at least ``threshold``: NMS within each canvas, then each face is taken from the
        largest canvas that found it (its landmarks are the finest there), a smaller canvas adding only faces that
        overlap none already kept (IoU <= ``nms_threshold``); clip, size rules."""
        boxes_k, scores_k, kps_k = [], [], []
        for c in cands:
            if c is None:
                continue
            ok = np.nonzero(c[1] >= threshold)[0]
            if ok.size == 0:
                continue
            boxes, scores = c[0][ok], c[1][ok]
            kps = None if c[2] is None else c[2][ok]
            keep = nms(boxes, scores, self.nms_threshold)
            if boxes_k:  # faces a larger canvas found keep that canvas's detection
                iou = iou_matrix(boxes[keep], np.concatenate(boxes_k))
                keep = keep[iou.max(axis=1) <= self.nms_threshold]
            boxes_k.append(boxes[keep])
            scores_k.append(scores[keep])
            kps_k.append(None if kps is None else kps[keep])
        if not boxes_k:
            return Detections.empty(self.has_kps)
        boxes, scores = np.concatenate(boxes_k), np.concatenate(scores_k)
        kps = np.concatenate(kps_k) if self.has_kps else None
        keep = np.argsort(-scores, kind="stable")
        det = Detections(
            boxes[keep].astype(np.float32),
            scores[keep],
            None if kps is None else kps[keep].astype(np.float32),
            path,
        )
        h, w = shape
        det.boxes[:, [0, 2]] = np.clip(det.boxes[:, [0, 2]], 0, w)
        det.boxes[:, [1, 3]] = np.clip(det.boxes[:, [1, 3]], 0, h)
        if self.min_face_size > 0 and len(det):
            side = np.minimum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
            det = det.select(np.nonzero(side >= self.min_face_size)[0])
        if self.max_faces > 0 and len(det) > self.max_faces:
            area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
            top = np.sort(np.argsort(-area, kind="stable")[: self.max_faces])
            det = det.select(top)
        return det

    def detect(self, image_rgb: np.ndarray) -> Detections:
        """Faces in one uint8 RGB ``(H, W, 3)`` image, coordinates in its pixels."""
        return self.detect_many([image_rgb])[0]

    def detect_many(
        self, images_rgb: list[np.ndarray], batch_size: int = 8, fallbacks: bool = True
    ) -> list[Detections]:
        """Faces in several images (see the module docstring for the stages); letterboxed canvases of one size
        are run in batches when the model allows. ``fallbacks=False`` runs the canvases only (no padded retry,
        no low-threshold stage): for inputs that often hold no face, such as video frames, where those stages
        would run on every empty frame and, triggered only when nothing was found, their few false faces
        land exactly there."""
        for img in images_rgb:
            if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
                raise InputError("detector input must be a uint8 RGB array of shape (H, W, 3)")
        low = fallbacks and self.fallback_threshold is not None
        floor = self.fallback_threshold if low else self.score_threshold
        n = len(images_rgb)
        cands: list[list] = [[] for _ in range(n)]
        for canvas in self.sizes:
            for i, c in enumerate(self._run_canvas(images_rgb, canvas, batch_size, None, floor)):
                cands[i].append(c)
        shapes = [img.shape[:2] for img in images_rgb]
        results = [self._finish(cands[i], self.score_threshold, shapes[i], "detector") for i in range(n)]
        missed = [i for i, d in enumerate(results) if len(d) == 0] if fallbacks else []
        if missed and self.pad_retry:
            pads = [max(images_rgb[i].shape[:2]) // 2 for i in missed]
            padded = self._run_canvas([images_rgb[i] for i in missed], self.input_size, batch_size, pads, floor)
            for i, c in zip(missed, padded):
                cands[i].append(c)
                det = self._finish([c], self.score_threshold, shapes[i], "padded")
                if len(det):
                    results[i] = det
        if low:
            for i in missed:
                if len(results[i]) == 0:
                    results[i] = self._finish(cands[i], self.fallback_threshold, shapes[i], "low_threshold")
        return results

    def _run_canvas(
        self,
        images_rgb: list[np.ndarray],
        canvas: tuple[int, int],
        batch_size: int,
        pads: list[int] | None,
        floor: float,
    ) -> list:
        """Candidates of each image on one canvas size (``pads``: per-image zero border, for the retry)."""
        out: list = []
        for start in range(0, len(images_rgb), batch_size):
            chunk = images_rgb[start : start + batch_size]
            canvases, boxes = [], []
            for k, img in enumerate(chunk):
                c, lb = letterbox(img, canvas, pads[start + k] if pads else 0)
                canvases.append(c)
                boxes.append(lb)
            outs = self._run(np.stack(canvases))
            out.extend(self._candidates(outs, b, lb, canvas, floor) for b, lb in enumerate(boxes))
        return out
