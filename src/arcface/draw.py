"""Drawing boxes and landmarks on RGB images."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Landmark colours (RGB): eyes green, nose red, mouth corners blue.
KPS_COLORS = [(0, 220, 0), (0, 220, 0), (230, 0, 0), (0, 80, 255), (0, 80, 255)]


def draw_faces(image_rgb: np.ndarray, faces: Sequence, labels: Sequence[str] | None = None) -> np.ndarray:
    """A copy of ``image_rgb`` with each face's box, score (or label) and 5 landmarks drawn."""
    out = np.ascontiguousarray(image_rgb.copy())
    thick = max(1, round(max(out.shape[:2]) / 400))
    for i, f in enumerate(faces):
        x1, y1, x2, y2 = (int(round(v)) for v in f.bbox)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 200, 0), thick)
        text = labels[i] if labels is not None else f"{f.score:.2f}"
        cv2.putText(out, text, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (255, 200, 0), thick)
        for (x, y), c in zip(f.kps, KPS_COLORS):
            cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, c, -1)
    return out


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per track id (golden-ratio hues)."""
    hue = int((track_id * 0.61803398875 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_labelled_boxes(
    image_rgb: np.ndarray, boxes: Sequence[np.ndarray], labels: Sequence[str], colors: Sequence[tuple[int, int, int]]
) -> np.ndarray:
    """A copy of ``image_rgb`` with each box (pixels, x1 y1 x2 y2) and its label drawn on a filled tab."""
    out = np.ascontiguousarray(image_rgb.copy())
    thick = max(1, round(max(out.shape[:2]) / 500))
    scale = 0.45 * thick
    for box, text, color in zip(boxes, labels, colors, strict=True):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick + 1)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = max(0, y1 - th - base - 4)
        cv2.rectangle(out, (x1, top), (x1 + tw + 6, top + th + base + 4), color, -1)
        cv2.putText(out, text, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def blur_regions(
    image_rgb: np.ndarray, boxes: Sequence[np.ndarray], mode: str = "blur", grow: float = 0.15
) -> np.ndarray:
    """A copy with each box (grown by ``grow`` of its size on every side) blurred or mosaicked beyond recognition."""
    out = np.ascontiguousarray(image_rgb.copy())
    h, w = out.shape[:2]
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        gx, gy = (x2 - x1) * grow, (y2 - y1) * grow
        a, b = max(0, int(x1 - gx)), max(0, int(y1 - gy))
        c, d = min(w, int(x2 + gx) + 1), min(h, int(y2 + gy) + 1)
        if c - a < 2 or d - b < 2:
            continue
        roi = out[b:d, a:c]
        if mode == "mosaic":
            small = cv2.resize(roi, (max(1, (c - a) // 12), max(1, (d - b) // 12)), interpolation=cv2.INTER_AREA)
            out[b:d, a:c] = cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_NEAREST)
        else:
            k = max(3, ((max(c - a, d - b) // 3) | 1))
            out[b:d, a:c] = cv2.GaussianBlur(roi, (k, k), 0)
    return out
