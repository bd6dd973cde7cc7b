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
