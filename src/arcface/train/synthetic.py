"""Synthetic "identities" for tests and benchmarks: no real faces, no downloads.

Each identity is a random smooth colour texture (a low-frequency random field plus a few oriented
gratings) rendered at 112x112. A sample of an identity is that texture under a random similarity warp
(shift, small rotation, scale), brightness/contrast change and pixel noise. Telling identities apart needs
the network to learn texture features invariant to those nuisances, which makes a small but real
verification task: held-out identities are never seen in training.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

SIZE = 112


def identity_texture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One identity's base texture, float32 RGB ``(size, size, 3)`` in [0, 255]."""
    field = rng.normal(0, 1, size=(6, 6, 3)).astype(np.float32)
    img = cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC) * 45.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(3):
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(2.0, 7.0)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
        img += wave[..., None] * rng.uniform(-35, 35, size=3).astype(np.float32)
    return np.clip(img + 127.5, 0, 255)


def render_sample(
    texture: np.ndarray,
    rng: np.random.Generator,
    shift: float = 8.0,
    rotate_deg: float = 12.0,
    brightness: float = 0.3,
    color_cast: float = 0.15,
    noise: float = 10.0,
) -> np.ndarray:
    """One ``uint8`` RGB sample of an identity: warp (shift in pixels, rotation in degrees, scale +-5%),
    contrast gain and offset (``brightness``), per-channel gain (``color_cast``), Gaussian noise (std in
    grey levels)."""
    size = texture.shape[0]
    angle = rng.uniform(-rotate_deg, rotate_deg)
    scale = rng.uniform(0.95, 1.05)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    m[:, 2] += rng.uniform(-shift, shift, size=2)
    img = cv2.warpAffine(texture, m, (size, size), borderMode=cv2.BORDER_REFLECT)
    gain = 1 + rng.uniform(-brightness, brightness)
    bias = rng.uniform(-100, 100) * brightness
    img = (img - 127.5) * gain + 127.5 + bias
    img = img * (1 + rng.uniform(-color_cast, color_cast, size=3)).astype(np.float32)
    img = img + rng.normal(0, noise, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_identities(n_ids: int, per_id: int, seed: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, size, size, 3) RGB, labels int64 (N,))`` with identities ``0..n_ids-1``."""
    rng = np.random.default_rng(seed)
    images = np.empty((n_ids * per_id, size, size, 3), np.uint8)
    labels = np.repeat(np.arange(n_ids, dtype=np.int64), per_id)
    k = 0
    for _ in range(n_ids):
        tex = identity_texture(rng, size)
        for _ in range(per_id):
            images[k] = render_sample(tex, rng)
            k += 1
    return images, labels


def write_image_folder(root: str | os.PathLike, images: np.ndarray, labels: np.ndarray, ext: str = ".jpg") -> Path:
    """Write ``images`` (RGB) as ``root/id_XXXXX/NNNN.jpg`` (one folder per label)."""
    root = Path(root)
    counts: dict[int, int] = {}
    for img, lab in zip(images, labels, strict=True):
        lab = int(lab)
        d = root / f"id_{lab:05d}"
        d.mkdir(parents=True, exist_ok=True)
        n = counts.get(lab, 0)
        counts[lab] = n + 1
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else []
        cv2.imwrite(str(d / f"{n:04d}{ext}"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    return root


def verification_pairs(
    images: np.ndarray, labels: np.ndarray, n_pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced pairs laid out as a ``.bin`` set: ``(images (2P, H, W, 3), issame (P,))``."""
    rng = np.random.default_rng(seed)
    by_id: dict[int, np.ndarray] = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    ids = np.array(sorted(by_id))
    first, second, same = [], [], []
    for p in range(n_pairs):
        if p % 2 == 0:
            c = rng.choice([c for c in ids if len(by_id[int(c)]) > 1])
            a, b = rng.choice(by_id[int(c)], size=2, replace=False)
            same.append(True)
        else:
            c1, c2 = rng.choice(ids, size=2, replace=False)
            a, b = rng.choice(by_id[int(c1)]), rng.choice(by_id[int(c2)])
            same.append(False)
        first.append(a)
        second.append(b)
    order = np.stack([first, second], axis=1).ravel()
    return images[order], np.asarray(same, dtype=bool)
