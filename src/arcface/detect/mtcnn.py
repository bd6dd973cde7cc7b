"""MTCNN (Zhang et al., 2016): a cascade of three small CNNs giving boxes and the 5 landmarks, in numpy.

The weights come from the MIT-licensed PyPI wheel ``mtcnn`` (version 1.0.0: ``assets/weights/{p,r,o}net.lz4``),
located on disk and never imported (its import pulls in TensorFlow). Those files are joblib pickles; they are
read here by a restricted unpickler that admits only joblib's array wrapper, ``numpy.ndarray`` and
``numpy.dtype`` (no other global, no object arrays), so a tampered file cannot run code. Their SHA-256 is
checked against the registry first.

The cascade, on RGB images normalised as ``(pixel - 127.5) / 128``:

1. P-Net, fully convolutional, on an image pyramid (smallest face ``min_face_size`` pixels, factor 0.709):
   12x12 windows at stride 2 scoring above ``thresholds[0]``, regressed, NMS 0.5 per scale and 0.7 over all;
2. R-Net on 24x24 crops of the squared boxes: score above ``thresholds[1]``, NMS 0.7, regression;
3. O-Net on 48x48 crops: score above ``thresholds[2]``, regression, 5 landmarks, NMS 0.7 (intersection over
   the smaller box).

Landmarks come in the library's order (left eye, right eye, nose, left and right mouth corners; image-left
first), in pixels of the input image.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arcface.detect.base import Detections
from arcface.errors import InputError, ModelError

WEIGHT_FILES = ("pnet.lz4", "rnet.lz4", "onet.lz4")

# ------------------------------------------------------------------------------------- safe weight reading


class _ArrayRecord:
    """Stands in for joblib's ``NumpyArrayWrapper``: shape, order and dtype of an array stored after it."""

    shape: tuple[int, ...] = ()
    order: str = "C"
    dtype: Any = None


_ALLOWED = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayRecord,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _WeightsUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its BUILD step can be extended
    """Reads joblib array pickles and nothing else (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return found

    def _load_build(self) -> None:
        super().load_build()
        record = self.stack[-1]
        if not isinstance(record, _ArrayRecord):
            return
        dtype = np.dtype(record.dtype)
        if dtype.hasobject:
            raise pickle.UnpicklingError("refused an object array")
        shape = tuple(int(v) for v in record.shape)
        if any(v < 0 for v in shape) or math.prod(shape) > 50_000_000:
            raise pickle.UnpicklingError(f"implausible array shape {shape}")
        if getattr(record, "numpy_array_alignment_bytes", None) is not None:
            pad = self._file_read(1)
            if pad and pad[0]:
                self._file_read(pad[0])
        count = math.prod(shape)
        data = self._file_read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise pickle.UnpicklingError("array data cut short")
        arr = np.frombuffer(data, dtype=dtype, count=count)
        arr = arr.reshape(shape[::-1]).T if record.order == "F" else arr.reshape(shape)
        self.stack[-1] = np.array(arr, dtype=np.float32)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build


def read_weights(path: str | os.PathLike) -> list[np.ndarray]:
    """The float32 arrays of one ``{p,r,o}net.lz4`` file, in the network's layer order."""
    from arcface.errors import require

    lz4_frame = require("lz4.frame", "mtcnn")
    p = Path(path)
    try:
        raw = lz4_frame.decompress(p.read_bytes())
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"{p}: unreadable MTCNN weights ({exc})") from None
    import io

    try:
        obj = _WeightsUnpickler(io.BytesIO(raw)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"{p}: refused or corrupt MTCNN weights ({exc})") from None
    if not isinstance(obj, list) or not all(isinstance(a, np.ndarray) for a in obj):
        raise ModelError(f"{p}: expected a list of arrays")
    return obj


# --------------------------------------------------------------------------------------- numpy layers


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'valid' 2-D convolution, stride 1: x ``(N, H, W, C)``, kernel ``(kh, kw, C, O)`` -> ``(N, H', W', O)``."""
    kh, kw = kernel.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    return np.tensordot(win, kernel.transpose(2, 0, 1, 3), axes=([3, 4, 5], [0, 1, 2])) + bias


def _prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * alpha.reshape(-1))


def _maxpool(x: np.ndarray, size: int, stride: int, same: bool) -> np.ndarray:
    """Max pooling with TensorFlow's 'same' (pad the end) or 'valid' padding."""
    n, h, w, c = x.shape
    if same:
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + size - h, 0), max((ow - 1) * stride + size - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return win.max(axis=(4, 5))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _pnet(w: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _maxpool(_prelu(_conv(x, w[0], w[1]), w[2]), 2, 2, same=True)
    x = _prelu(_conv(x, w[3], w[4]), w[5])
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    return _conv(x, w[9], w[10]), _softmax(_conv(x, w[11], w[12]))  # (regression, probabilities)


def _rnet(w: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _maxpool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, same=True)
    x = _maxpool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, same=False)
    x = _prelu(_conv(x, w[6], w[7]), w[8])
    x = x.transpose(0, 2, 1, 3).reshape(len(x), -1)  # the nets were trained with width and height swapped
    x = _prelu(x @ w[9] + w[10], w[11])
    return x @ w[12] + w[13], _softmax(x @ w[14] + w[15])


def _onet(w: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _maxpool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, same=True)
    x = _maxpool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, same=False)
    x = _maxpool(_prelu(_conv(x, w[6], w[7]), w[8]), 2, 2, same=True)
    x = _prelu(_conv(x, w[9], w[10]), w[11])
    x = x.transpose(0, 2, 1, 3).reshape(len(x), -1)
    x = _prelu(x @ w[12] + w[13], w[14])
    return x @ w[15] + w[16], x @ w[17] + w[18], _softmax(x @ w[19] + w[20])


# ------------------------------------------------------------------------------------------ box helpers


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy NMS (overlap over the union, or over the smaller box for ``method="min"``)."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    b = boxes.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += w * 0.5 - side * 0.5
    b[:, 1] += h * 0.5 - side * 0.5
    b[:, 2:4] = b[:, 0:2] + side[:, None]
    return b


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


def _patches(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """``(N, size, size, 3)`` bilinear crops of ``boxes`` from a normalised image (0 outside it)."""
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        sx, sy = (size - 1) / max(x2 - x1, 1e-6), (size - 1) / max(y2 - y1, 1e-6)
        m = np.array([[sx, 0, -x1 * sx], [0, sy, -y1 * sy]], np.float32)
        out[i] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return out


# --------------------------------------------------------------------------------------------- detector


class MTCNN:
    """MTCNN face detector with 5 landmarks (numpy; no model runtime needed).

    Args:
        model_path: ``pnet.lz4`` (or the folder holding the three weight files).
        spec: kept for the registry (MTCNN normalises as ``(pixel - 127.5) / 128`` itself).
        input_size: photos whose longer side exceeds ``max(input_size)`` pixels are scanned downscaled to it.
        score_threshold: minimum final (O-Net) face probability in ``[0, 1]`` (default 0.8, as the ``mtcnn``
            package); P-Net and R-Net use 0.6 and 0.7.
        max_faces: keep at most this many (largest) faces per image; 0 = all.
        min_face_size: smallest face searched for, in pixels (default 20, the usual MTCNN setting).
        threads, runtime, precision: unused (MTCNN runs in numpy, in float32).
    """

    has_kps = True
    prefers_batches = False

    def __init__(
        self,
        model_path: str | os.PathLike,
        spec: Any = None,
        input_size: tuple[int, int] | int = (640, 640),
        score_threshold: float = 0.8,
        nms_threshold: float = 0.7,
        max_faces: int = 0,
        min_face_size: float = 0.0,
        threads: int | None = None,
        runtime: str = "onnxruntime",
        precision: str = "f32",
    ) -> None:
        folder = Path(model_path)
        folder = folder if folder.is_dir() else folder.parent
        self.model_path = str(folder / WEIGHT_FILES[0])
        self.spec = spec
        missing = [f for f in WEIGHT_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelError(f"{folder}: MTCNN weights {', '.join(missing)} missing (pip install 'arcface[mtcnn]')")
        self._verify(folder)
        self.weights = [read_weights(folder / f) for f in WEIGHT_FILES]
        side = input_size if isinstance(input_size, int) else max(input_size)
        if side <= 0:
            raise InputError(f"input size must be positive, got {input_size}")
        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"score_threshold must lie in [0, 1], got {score_threshold}")
        self.max_side = int(side)
        self.thresholds = (0.6, 0.7, float(score_threshold))
        self.nms_threshold = float(nms_threshold)
        self.max_faces = int(max_faces)
        self.min_face_size = float(min_face_size) if min_face_size and min_face_size > 0 else 20.0

    @staticmethod
    def _verify(folder: Path) -> None:
        from arcface.io_utils import sha256_file
        from arcface.models.cards import card_for_file

        for f in WEIGHT_FILES:
            card = card_for_file(f)
            if card is not None and card.sha256 and sha256_file(folder / f) not in card.sha256:
                raise ModelError(f"model file {folder / f} is altered or corrupt (SHA-256 does not match)")

    def detect(self, image_rgb: np.ndarray) -> Detections:
        """Faces in one uint8 RGB ``(H, W, 3)`` image, coordinates in its pixels."""
        if not (isinstance(image_rgb, np.ndarray) and image_rgb.ndim == 3 and image_rgb.shape[2] == 3):
            raise InputError("detector input must be a uint8 RGB array of shape (H, W, 3)")
        h, w = image_rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = (
            image_rgb
            if scale == 1.0
            else cv2.resize(
                image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        )
        det = self._cascade((small.astype(np.float32) - 127.5) / 128.0, self.min_face_size * scale)
        if scale != 1.0 and len(det):
            det = Detections(det.boxes / scale, det.scores, det.kps / scale)
        if len(det):
            det.boxes[:, [0, 2]] = np.clip(det.boxes[:, [0, 2]], 0, w)
            det.boxes[:, [1, 3]] = np.clip(det.boxes[:, [1, 3]], 0, h)
        if self.max_faces > 0 and len(det) > self.max_faces:
            area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
            det = det.select(np.sort(np.argsort(-area, kind="stable")[: self.max_faces]))
        return det

    def detect_many(self, images_rgb: list[np.ndarray], batch_size: int = 8) -> list[Detections]:
        return [self.detect(img) for img in images_rgb]

    def _cascade(self, img: np.ndarray, min_face: float) -> Detections:
        pnet, rnet, onet = self.weights
        h, w = img.shape[:2]
        # 1. P-Net over the pyramid
        m = 12.0 / max(min_face, 12.0)
        boxes_all = []
        side = min(h, w) * m
        k = 0
        while side >= 12:
            s = m * 0.709**k
            hs, ws = max(12, math.ceil(h * s)), max(12, math.ceil(w * s))
            scaled = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
            reg, prob = _pnet(pnet, scaled[None])
            ys, xs = np.nonzero(prob[0, :, :, 1] > self.thresholds[0])
            if ys.size:
                cell = np.stack([xs * 2, ys * 2, xs * 2 + 12, ys * 2 + 12], axis=1).astype(np.float32)
                size = np.float32(12)
                boxes = (cell + reg[0, ys, xs] * size) / s
                scores = prob[0, ys, xs, 1]
                keep = _nms(boxes, scores, 0.5)
                boxes_all.append(np.concatenate([boxes[keep], scores[keep, None]], axis=1))
            side *= 0.709
            k += 1
        if not boxes_all:
            return Detections.empty(True)
        cand = np.concatenate(boxes_all)
        cand = cand[_nms(cand[:, :4], cand[:, 4], 0.7)]
        boxes = _square(cand[:, :4])
        # 2. R-Net
        reg, prob = _rnet(rnet, _patches(img, boxes, 24))
        ok = prob[:, 1] > self.thresholds[1]
        boxes, scores, reg = boxes[ok], prob[ok, 1], reg[ok]
        if not len(boxes):
            return Detections.empty(True)
        keep = _nms(boxes, scores, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        # 3. O-Net
        reg, lmk, prob = _onet(onet, _patches(img, boxes, 48))
        ok = prob[:, 1] > self.thresholds[2]
        boxes, scores, reg, lmk = boxes[ok], prob[ok, 1], reg[ok], lmk[ok]
        if not len(boxes):
            return Detections.empty(True)
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        kps = np.stack([bw * lmk[:, :5] + boxes[:, :1] - 1, bh * lmk[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg)
        keep = _nms(boxes, scores, self.nms_threshold, "min")
        return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32), kps[keep].astype(np.float32))
