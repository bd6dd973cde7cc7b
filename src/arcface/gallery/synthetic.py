"""Synthetic face templates with the second-order statistics of real ArcFace embeddings (for benchmarks).

``../shared/data/embedding_stats.npz`` holds the mean, the between-identity covariance (of identity centres) and
the pooled within-identity covariance of real w600k_mbf embeddings (see that folder's README). An identity is
drawn as ``c = normalize(mean + V_b @ (sqrt(l_b) * z))`` and a photo of it as
``normalize(c + q * V_w @ (sqrt(l_w) * z'))`` with ``z, z'`` standard normal and a per-photo quality factor
``q = WITHIN_SCALE * exp(QUALITY_SPREAD * u)``, ``u`` standard normal (photos differ: frontal, profile, blur).
The two constants were fitted so that photo-to-photo cosines match the real pairs: genuine quantiles 5/50/95%
0.232 / 0.514 / 0.767 against the real 0.247 / 0.515 / 0.754 (Kolmogorov-Smirnov distance 0.038), impostors
KS 0.037 (:func:`check_against_real` measures it; a single scale 1.4 matched the median only, KS 0.31).
Isotropic Gaussian vectors, the usual stand-in, are far harder for an index than these (real templates share a
mean direction and most of their variance lies in a few hundred directions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcface.errors import InputError

#: Typical multiplier of the within-identity deviation of one photo.
WITHIN_SCALE = 1.3
#: Log-normal spread of that multiplier from photo to photo.
QUALITY_SPREAD = 0.5
_CHUNK = 65_536


@dataclass(frozen=True)
class FaceStatistics:
    """The statistics of real embeddings: ``mean`` (D,), between/within factors ``(D, D)`` (``V * sqrt(l)``)
    and the real genuine/impostor cosines."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray
    genuine_cos: np.ndarray
    impostor_cos: np.ndarray

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaceStatistics:
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                b = z["between_eigvecs"] * np.sqrt(np.clip(z["between_eigvals"], 0, None))[None, :]
                w = z["within_eigvecs"] * np.sqrt(np.clip(z["within_eigvals"], 0, None))[None, :]
                return cls(
                    z["mean"].astype(np.float32),
                    b.astype(np.float32),
                    w.astype(np.float32),
                    z["genuine_cos"].astype(np.float32),
                    z["impostor_cos"].astype(np.float32),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{p}: not an embedding statistics file ({exc})") from None

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def _normalize(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def identities(stats: FaceStatistics, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, D)`` float32 unit identity centres."""
    out = np.empty((n, stats.dim), np.float32)
    for s in range(0, n, _CHUNK):
        z = rng.standard_normal((min(_CHUNK, n - s), stats.dim), dtype=np.float32)
        out[s : s + len(z)] = _normalize(stats.mean[None, :] + z @ stats.between.T)
    return out


def photos(
    stats: FaceStatistics,
    centres: np.ndarray,
    rng: np.random.Generator,
    scale: float = WITHIN_SCALE,
    spread: float = QUALITY_SPREAD,
) -> np.ndarray:
    """One ``(len(centres), D)`` float32 unit embedding per centre: a new photo of each identity."""
    out = np.empty_like(centres)
    for s in range(0, len(centres), _CHUNK):
        c = centres[s : s + _CHUNK]
        q = (scale * np.exp(spread * rng.standard_normal((len(c), 1)))).astype(np.float32)
        z = rng.standard_normal(c.shape, dtype=np.float32)
        out[s : s + len(c)] = _normalize(c + q * (z @ stats.within.T))
    return out


def check_against_real(stats: FaceStatistics, n: int = 2000, seed: int = 0) -> dict[str, float]:
    """Medians of generated photo-to-photo genuine and impostor cosines next to the real ones, and the two-sample
    Kolmogorov-Smirnov distances between generated and real cosines."""
    rng = np.random.default_rng(seed)
    c = identities(stats, n, rng)
    a, b = photos(stats, c, rng), photos(stats, c, rng)
    genuine = np.sum(a * b, axis=1)
    impostor = np.sum(a * np.roll(b, 1, axis=0), axis=1)
    return {
        "genuine_median": float(np.median(genuine)),
        "real_genuine_median": float(np.median(stats.genuine_cos)),
        "impostor_median": float(np.median(impostor)),
        "real_impostor_median": float(np.median(stats.impostor_cos)),
        "ks_genuine": _ks(genuine, stats.genuine_cos),
        "ks_impostor": _ks(impostor, stats.impostor_cos),
    }


def _ks(x: np.ndarray, y: np.ndarray) -> float:
    grid = np.sort(np.concatenate([x, y]))
    fx = np.searchsorted(np.sort(x), grid, side="right") / len(x)
    fy = np.searchsorted(np.sort(y), grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))
