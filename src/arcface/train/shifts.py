"""Domain shifts users meet, applied to aligned crops for fine-tuning (augmentation) and evaluation.

* :func:`draw_mask`: a synthetic face mask drawn from the 5 landmarks.
* :func:`low_resolution`: a face seen at a few pixels (CCTV, crowds), brought back to the crop size.

A surgical/cloth mask covers the face from the bridge of the nose to below the chin. On an aligned crop the
landmarks sit near the ArcFace template (:data:`arcface.align.ARCFACE_TEMPLATE`), so the mask is placed from
them: its top edge between the eyes and the nose tip, its sides beyond the mouth corners by about the
inter-ocular distance, its bottom below the chin. Colour, top height, width and a fold shading vary with a
seeded generator, so a masked set is reproducible.
"""

from __future__ import annotations

import cv2
import numpy as np

from arcface.align import template_for

#: Mask colours (RGB): light blue, white, black, grey, dark blue.
MASK_COLOURS = ((150, 190, 220), (235, 235, 235), (30, 30, 35), (140, 140, 145), (40, 60, 110))


def mask_polygon(kps: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """The mask outline ``(N, 2)`` float32 in pixels for landmarks ``kps`` ``(5, 2)`` (eyes, nose, mouth corners)."""
    rng = rng or np.random.default_rng(0)
    le, re, nose, lm, rm = (np.asarray(p, np.float64) for p in kps)
    eye_y = (le[1] + re[1]) / 2
    iod = float(np.hypot(*(re - le)))
    top = eye_y + (nose[1] - eye_y) * rng.uniform(0.45, 0.7)
    mouth_y = (lm[1] + rm[1]) / 2
    chin = mouth_y + (mouth_y - nose[1]) * rng.uniform(1.4, 1.9)
    cx = (nose[0] + (lm[0] + rm[0]) / 2) / 2
    half = iod * rng.uniform(0.85, 1.0)
    pts = [
        (cx - half * 0.55, top),
        (cx, top - iod * 0.08),
        (cx + half * 0.55, top),
        (cx + half, top + (mouth_y - top) * 0.35),
        (cx + half * 0.9, mouth_y + (chin - mouth_y) * 0.4),
        (cx + half * 0.45, chin),
        (cx - half * 0.45, chin),
        (cx - half * 0.9, mouth_y + (chin - mouth_y) * 0.4),
        (cx - half, top + (mouth_y - top) * 0.35),
    ]
    return np.asarray(pts, np.float32)


def draw_mask(
    image_rgb: np.ndarray, kps: np.ndarray | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A copy of ``image_rgb`` (uint8 RGB) with a mask drawn over the lower face.

    Args:
        image_rgb: the image; an aligned crop when ``kps`` is ``None``.
        kps: the 5 landmarks in pixels of the image (default: the ArcFace template of the crop's size).
        rng: the generator choosing colour and shape (default: seed 0).
    """
    rng = rng or np.random.default_rng(0)
    if kps is None:
        kps = template_for(image_rgb.shape[1])
    poly = mask_polygon(kps, rng)
    colour = np.array(MASK_COLOURS[int(rng.integers(len(MASK_COLOURS)))], np.float32)
    if image_rgb.ndim == 3 and np.array_equal(image_rgb[..., 0], image_rgb[..., 1]):
        colour[:] = colour.mean()  # a grayscale photo gets a grey mask
    layer = np.zeros(image_rgb.shape[:2], np.uint8)
    cv2.fillPoly(layer, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    alpha = layer.astype(np.float32)[..., None] / 255.0
    # horizontal folds: a gentle shading across the mask's height
    ys = np.arange(image_rgb.shape[0], dtype=np.float32)[:, None, None]
    shade = 1.0 - 0.08 * (0.5 + 0.5 * np.sin(ys * rng.uniform(0.35, 0.6)))
    masked = colour[None, None, :] * shade
    out = image_rgb.astype(np.float32) * (1 - alpha) + masked * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def low_resolution(image_rgb: np.ndarray, side: int) -> np.ndarray:
    """``image_rgb`` reduced to ``side`` x ``side`` pixels (area averaging, as a camera's sensor would) and
    enlarged back to its size (bilinear, as the aligner's warp would)."""
    h, w = image_rgb.shape[:2]
    small = cv2.resize(image_rgb, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
