"""Face alignment to the ArcFace template.

Landmarks are 5 points in pixels, ``(x, y)``, ordered left eye, right eye, nose, left mouth corner,
right mouth corner (image-left first). Alignment estimates the least-squares similarity transform
(rotation, uniform scale, translation; no reflection — Umeyama's estimate) from the landmarks to
:data:`ARCFACE_TEMPLATE` and warps the image with bilinear interpolation, black borders.

In 2-D a similarity is ``z -> a*z + t`` with complex ``a`` and ``t``, so the least-squares estimate has a
closed form, ``a = sum(conj(s_c) * d_c) / sum(|s_c|^2)`` over centred points, which is Umeyama's solution
and vectorises over a batch of faces.
"""

from __future__ import annotations

import cv2
import numpy as np

from arcface.errors import InputError

#: ArcFace 112x112 template (insightface's published alignment), pixels (x, y).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def template_for(size: int = 112) -> np.ndarray:
    """The template scaled for a square crop of ``size`` pixels (a multiple of 112 or of 128)."""
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * (size / 112.0)
    if size % 128 == 0:
        ratio = size / 128.0
        return (ARCFACE_TEMPLATE + np.array([8.0, 0.0], np.float32)) * ratio
    raise InputError(f"alignment size must be a multiple of 112 or 128, got {size}")


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms mapping ``src`` points onto ``dst`` points.

    Args:
        src: ``(K, 2)`` or ``(N, K, 2)`` points (x, y).
        dst: ``(K, 2)`` or ``(N, K, 2)`` points, broadcast against ``src``.
    Returns:
        ``(2, 3)`` or ``(N, 2, 3)`` float64 affine matrices ``[[s*cos, -s*sin, tx], [s*sin, s*cos, ty]]``.
    """
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    single = s.ndim == 2 and d.ndim == 2
    s, d = np.broadcast_arrays(s[None] if s.ndim == 2 else s, d[None] if d.ndim == 2 else d)
    if s.shape[-1] != 2:
        raise InputError(f"points must have shape (..., K, 2), got {s.shape}")
    zs = s[..., 0] + 1j * s[..., 1]
    zd = d[..., 0] + 1j * d[..., 1]
    ms, md = zs.mean(axis=-1, keepdims=True), zd.mean(axis=-1, keepdims=True)
    cs, cd = zs - ms, zd - md
    denom = np.sum(np.abs(cs) ** 2, axis=-1)
    if np.any(denom <= 1e-12):
        raise InputError("landmarks are degenerate (all points coincide)")
    a = np.sum(np.conj(cs) * cd, axis=-1) / denom
    t = md[..., 0] - a * ms[..., 0]
    m = np.empty(a.shape + (2, 3), np.float64)
    m[..., 0, 0], m[..., 0, 1], m[..., 0, 2] = a.real, -a.imag, t.real
    m[..., 1, 0], m[..., 1, 1], m[..., 1, 2] = a.imag, a.real, t.imag
    return m[0] if single else m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of ``(..., 2, 3)`` affine matrices (e.g. crop -> image for drawing)."""
    m = np.asarray(m, np.float64)
    a = m[..., :2]
    inv = np.linalg.inv(a)
    t = -np.einsum("...ij,...j->...i", inv, m[..., 2])
    return np.concatenate([inv, t[..., None]], axis=-1)


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply ``(2, 3)`` affine ``m`` to ``(K, 2)`` points (or batched ``(N,2,3)`` to ``(N,K,2)``)."""
    m = np.asarray(m, np.float64)
    pts = np.asarray(pts, np.float64)
    return np.einsum("...ij,...kj->...ki", m[..., :2], pts) + m[..., None, :, 2]


def alignment_matrices(kps: np.ndarray, size: int = 112) -> np.ndarray:
    """``(N, 2, 3)`` image -> crop transforms for ``(N, 5, 2)`` landmarks."""
    kps = np.asarray(kps, np.float64)
    if kps.ndim != 3 or kps.shape[1:] != (5, 2):
        raise InputError(f"landmarks must have shape (N, 5, 2), got {kps.shape}")
    return estimate_similarity(kps, template_for(size)[None].astype(np.float64))


def align_faces(image_rgb: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp each face of one image to the ArcFace template.

    Args:
        image_rgb: uint8 ``(H, W, 3)`` RGB image.
        kps: ``(N, 5, 2)`` (or ``(5, 2)``) landmarks in pixels of ``image_rgb``.
        size: output side in pixels (112 for ArcFace models).
    Returns:
        uint8 ``(N, size, size, 3)`` RGB crops.
    """
    kps = np.asarray(kps, np.float32)
    if kps.ndim == 2:
        kps = kps[None]
    if len(kps) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    mats = alignment_matrices(kps, size)
    out = np.empty((len(kps), size, size, 3), np.uint8)
    for i, m in enumerate(mats):
        out[i] = cv2.warpAffine(image_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out
