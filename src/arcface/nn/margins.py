r"""Additive / multiplicative angular margins on cosine logits (ArcFace, CosFace, SphereFace, combined).

For an embedding :math:`x` and unit class centers :math:`W_j` let :math:`\cos\theta_j = \hat x \cdot \hat W_j`
(angles in radians). :class:`CombinedMarginLoss` turns the cosines of a batch into scaled logits::

    target class y:   s * (cos(m1 * theta_y + m2) - m3)
    other classes j:  s * cos(theta_j)

ArcFace is ``(m1, m2, m3) = (1, 0.5, 0)``, CosFace ``(1, 0, 0.35)``, SphereFace-style margins use ``m1 > 1``;
any combination is allowed. The logits then go to a softmax cross-entropy.

Numerical guards (kept on purpose, unlike some reference code):

* ``theta = acos(clamp(cos, -1 + eps, 1 - eps))`` so the gradient ``-1 / sqrt(1 - cos^2)`` stays finite at
  ``cos = +-1``.
* ``m1 * theta + m2`` may pass ``pi``, where ``cos`` turns back up and the loss would *reward* moving away
  from the class center. Past ``theta_0 = (pi - m2) / m1`` the target logit uses the monotonic fallback
  ``cos(theta) - mm - m3`` with ``mm = max(d * sin(d), 1 + cos(theta_0))``, ``d = pi - theta_0``. For ArcFace
  (``m1 = 1``) this is insightface's ``th``/``mm`` rule, ``cos(theta) - m2 * sin(m2)`` when
  ``cos(theta) <= cos(pi - m2)``; the ``max`` keeps the target logit non-increasing in theta on ``[0, pi]``
  for every ``m1``.
* ``easy_margin=True`` applies the margin only where ``cos > 0`` (the target logit is plain ``cos``
  elsewhere) instead of the fallback.
* The margin is computed in float32 (float64 stays float64) whatever the input dtype, so fp16/bf16
  cosines from mixed-precision training give finite logits; the output is float32 (or float64).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from arcface.errors import InputError


class CombinedMarginLoss(nn.Module):
    """Map cosine logits to margin-adjusted, scaled logits.

    Args:
        s: scale (the radius of the hypersphere), > 0.
        m1: multiplicative angular margin (SphereFace), >= 1 in practice.
        m2: additive angular margin in radians (ArcFace).
        m3: additive cosine margin (CosFace).
        easy_margin: apply the angular margin only where ``cos(theta) > 0``.
        interclass_filtering_threshold: if > 0, non-target cosines above it are set to 0 before scaling
            (treats very close negative classes as probable label noise, as arcface_torch does).
        eps: clamp margin for ``acos``.

    ``forward(cos, labels)``: ``cos`` is ``(B, C)`` cosines in ``[-1, 1]`` (any float dtype); ``labels`` is
    ``(B,)`` int64 column indices of the target class, ``-1`` where the row's target is not among these
    columns (Partial FC shards). Returns ``(B, C)`` float32 (float64 for float64 input) logits.
    """

    def __init__(
        self,
        s: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.5,
        m3: float = 0.0,
        easy_margin: bool = False,
        interclass_filtering_threshold: float = 0.0,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        if s <= 0:
            raise InputError(f"scale s must be > 0, got {s}")
        if m1 <= 0:
            raise InputError(f"multiplicative margin m1 must be > 0, got {m1}")
        if m2 < 0 or m2 >= math.pi:
            raise InputError(f"angular margin m2 must be in [0, pi) radians, got {m2}")
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.easy_margin = bool(easy_margin)
        self.interclass_filtering_threshold = float(interclass_filtering_threshold)
        self.eps = float(eps)
        # Beyond theta_0 the target logit uses the monotonic fallback cos(theta) - mm - m3.
        self.theta0 = min(math.pi, (math.pi - self.m2) / self.m1)
        d = math.pi - self.theta0
        self.th = math.cos(self.theta0)
        self.mm = max(d * math.sin(d), 1.0 + self.th)

    @classmethod
    def arcface(cls, s: float = 64.0, m: float = 0.5) -> CombinedMarginLoss:
        """ArcFace: ``s * cos(theta + m)``."""
        return cls(s, 1.0, m, 0.0)

    @classmethod
    def cosface(cls, s: float = 64.0, m: float = 0.35) -> CombinedMarginLoss:
        """CosFace: ``s * (cos(theta) - m)``."""
        return cls(s, 1.0, 0.0, m)

    @classmethod
    def sphereface(cls, s: float = 64.0, m: float = 1.35) -> CombinedMarginLoss:
        """SphereFace-style multiplicative margin: ``s * cos(m * theta)`` (with feature normalisation)."""
        return cls(s, m, 0.0, 0.0)

    def extra_repr(self) -> str:
        return f"s={self.s}, m1={self.m1}, m2={self.m2}, m3={self.m3}, easy_margin={self.easy_margin}"

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        """Margin-adjusted target cosine (before scaling) for cosines ``cos`` of the target class."""
        c = cos.clamp(-1.0 + self.eps, 1.0 - self.eps)
        if self.m1 == 1.0 and self.m2 == 0.0:
            return c - self.m3
        theta = torch.acos(c)
        phi = torch.cos(self.m1 * theta + self.m2) - self.m3
        if self.easy_margin:
            return torch.where(c > 0, phi, c)
        return torch.where(theta <= self.theta0, phi, c - self.mm - self.m3)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if cos.ndim != 2:
            raise InputError(f"cos must be (batch, classes), got shape {tuple(cos.shape)}")
        if labels.shape != cos.shape[:1]:
            raise InputError(f"labels must be ({cos.shape[0]},), got shape {tuple(labels.shape)}")
        dtype = torch.float64 if cos.dtype == torch.float64 else torch.float32
        logits = cos.to(dtype)
        rows = torch.nonzero(labels >= 0, as_tuple=True)[0]
        cols = labels[rows].long()
        if self.interclass_filtering_threshold > 0:
            with torch.no_grad():
                dirty = logits > self.interclass_filtering_threshold
                dirty[rows, cols] = False
            logits = logits.masked_fill(dirty, 0.0)
        target = self.target_logit(logits[rows, cols])
        logits = logits.index_put((rows, cols), target)
        return logits * self.s
