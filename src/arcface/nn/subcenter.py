"""Sub-center ArcFace: K sub-centers per class; a sample's class cosine is its best sub-center.

``cos(x, class c) = max_k  x_hat . W_hat[c, k]``; the margin (:class:`CombinedMarginLoss`) is applied to
that cosine. After training, most clean samples of a class gather around one *dominant* sub-center while
noisy ones sit at other sub-centers or far from it, which :meth:`SubCenterArcFace.dominant` exposes for
data cleaning (e.g. drop samples more than 75 degrees from their class's dominant sub-center).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from arcface.errors import InputError
from arcface.nn.margins import CombinedMarginLoss


class SubCenterArcFace(nn.Module):
    """Full (single-process) classification head with K sub-centers per class.

    Args:
        embedding_size: embedding length D.
        num_classes: number of classes C.
        k: sub-centers per class (K=1 is plain ArcFace).
        margin: margin applied to the class cosines (default ArcFace s=64, m=0.5).

    The weight is ``(C * K, D)``; rows ``c*K .. c*K+K-1`` are the sub-centers of class ``c``.
    """

    def __init__(
        self, embedding_size: int, num_classes: int, k: int = 3, margin: CombinedMarginLoss | None = None
    ) -> None:
        super().__init__()
        if k < 1 or num_classes < 1 or embedding_size < 1:
            raise InputError(f"need k >= 1, num_classes >= 1, embedding_size >= 1; got {k}, {num_classes}")
        self.k, self.num_classes, self.embedding_size = k, num_classes, embedding_size
        self.margin = margin if margin is not None else CombinedMarginLoss()
        self.weight = nn.Parameter(torch.normal(0.0, 0.01, (num_classes * k, embedding_size)))

    def subcenter_cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, C, K)`` cosines between the embeddings and every sub-center (float32)."""
        x = F.normalize(embeddings.float(), dim=1)
        w = F.normalize(self.weight.float(), dim=1)
        return (x @ w.t()).view(x.shape[0], self.num_classes, self.k)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` class cosines: the max over each class's sub-centers."""
        return self.subcenter_cosines(embeddings).amax(dim=2)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the margin logits (scalar)."""
        self._check_labels(labels, embeddings)
        logits = self.margin(self.cosine(embeddings).clamp(-1.0, 1.0), labels)
        return F.cross_entropy(logits, labels.long())

    def _check_labels(self, labels: torch.Tensor, embeddings: torch.Tensor) -> None:
        if labels.shape != embeddings.shape[:1]:
            raise InputError(f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise InputError(f"labels must be in [0, {self.num_classes}), got [{labels.min()}, {labels.max()}]")

    @torch.no_grad()
    def assignment_counts(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(C, K)`` int64: for each class, how many of the given samples are nearest to each sub-center.

        Accumulate over chunks of a data set and pass the sum to :meth:`dominant` as ``counts``.
        """
        self._check_labels(labels, embeddings)
        cos = self.subcenter_cosines(embeddings)
        labels = labels.long()
        nearest = cos[torch.arange(labels.numel(), device=cos.device), labels].argmax(dim=1)
        flat = torch.bincount(labels * self.k + nearest, minlength=self.num_classes * self.k)
        return flat.view(self.num_classes, self.k)

    @torch.no_grad()
    def dominant(
        self, embeddings: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Dominant sub-center of each sample's class, and the sample's angle to it.

        The dominant sub-center of a class is the one most of its samples are nearest to (ties: the lowest
        index). Without ``counts`` it is decided from the samples given here, so pass all samples of a class
        together, or pass ``counts`` summed with :meth:`assignment_counts` over the whole data set.

        Returns:
            ``(subcenter_index, angle)``: int64 ``(B,)`` in ``[0, K)`` and float32 ``(B,)`` angles in
            radians in ``[0, pi]`` between each embedding and its class's dominant sub-center.
        """
        if counts is None:
            counts = self.assignment_counts(embeddings, labels)
        elif tuple(counts.shape) != (self.num_classes, self.k):
            raise InputError(f"counts must be ({self.num_classes}, {self.k}), got {tuple(counts.shape)}")
        else:
            self._check_labels(labels, embeddings)
        labels = labels.long()
        dom = counts.to(labels.device).argmax(dim=1)[labels]
        cos = self.subcenter_cosines(embeddings)[torch.arange(labels.numel(), device=labels.device), labels, dom]
        return dom, torch.acos(cos.clamp(-1.0, 1.0))
