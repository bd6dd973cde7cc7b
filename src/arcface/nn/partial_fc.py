"""Partial FC: a model-parallel, class-sampled margin softmax for very many identities.

Each rank holds the centers of a contiguous slice of classes ``[class_start, class_start + num_local)``
(the ``C`` classes split as evenly as possible, lower ranks taking the remainder). A training step:

1. all-gather the embeddings (with a gradient flowing back to each rank, see
   :func:`~arcface.nn.distributed.all_gather_with_grad`) and the labels of every rank;
2. sample ``max(round(r * num_local), #positives)`` of this rank's classes, always keeping every class that
   occurs in the global batch (the positives), the rest uniformly at random;
3. cosine between normalised embeddings and normalised sampled centers (float32; with K sub-centers the max
   over each class's sub-centers), then the margin (:class:`CombinedMarginLoss`);
4. softmax cross-entropy across all ranks' classes (all-reduce of the row max and of the exp-sum).

With ``r = 1`` the loss and gradients equal those of a full FC layer over all classes. In a single process
without ``torch.distributed`` initialised it runs as world size 1. Only rows of sampled classes get a
non-zero gradient; the weight's gradient is dense (any optimizer works) unless ``sparse_grad=True``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from arcface.errors import InputError
from arcface.nn.distributed import all_gather_no_grad, all_gather_with_grad, dist_cross_entropy, dist_info
from arcface.nn.margins import CombinedMarginLoss


def class_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, count)`` of the classes held by ``rank`` when ``num_classes`` are split over ranks."""
    base, extra = divmod(num_classes, world_size)
    return rank * base + min(rank, extra), base + (1 if rank < extra else 0)


class PartialFC(nn.Module):
    """Margin-softmax classification loss with class centers sharded across ranks and sampled per step.

    Args:
        embedding_size: embedding length D.
        num_classes: total number of classes C over all ranks.
        sample_rate: fraction r in (0, 1] of this rank's classes used per training step (eval uses all).
        margin_loss: maps cosines to logits; default ArcFace (s=64, m=0.5).
        num_subcenters: K sub-centers per class (Sub-center ArcFace); 1 for plain centers.
        process_group: the ``torch.distributed`` group (default: the world when initialised).
        generator: optional ``torch.Generator`` for the class sampling.
        sparse_grad: when sampling (``sample_rate < 1``), give ``weight`` a *sparse* gradient holding only
            the sampled rows, instead of a dense one as large as the weight. It saves two weight-sized
            buffers per step (at 1M classes x 512-d, about 4 GiB); the optimizer must accept sparse
            gradients (``torch.optim.SGD`` without weight decay, ``SparseAdam``).

    ``forward(local_embeddings (B, D), local_labels (B,))`` returns the scalar mean loss over the global
    batch (every rank must pass the same B). ``weight`` is ``(num_local * K, D)``; rows
    ``c*K .. c*K+K-1`` are the sub-centers of local class ``c``.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        sample_rate: float = 1.0,
        margin_loss: CombinedMarginLoss | None = None,
        num_subcenters: int = 1,
        process_group: Any = None,
        generator: torch.Generator | None = None,
        sparse_grad: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < sample_rate <= 1.0:
            raise InputError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if num_subcenters < 1 or embedding_size < 1:
            raise InputError(f"need num_subcenters >= 1 and embedding_size >= 1, got {num_subcenters}")
        self.group = process_group
        self.rank, self.world_size = dist_info(process_group)
        if num_classes < self.world_size:
            raise InputError(f"num_classes ({num_classes}) must be >= world size ({self.world_size})")
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.sample_rate, self.k = float(sample_rate), int(num_subcenters)
        self.class_start, self.num_local = class_range(num_classes, self.rank, self.world_size)
        self.num_sample = max(1, int(round(self.sample_rate * self.num_local)))
        self.margin_loss = margin_loss if margin_loss is not None else CombinedMarginLoss()
        self.generator = generator
        self.sparse_grad = bool(sparse_grad)
        self.weight = nn.Parameter(torch.normal(0.0, 0.01, (self.num_local * self.k, embedding_size)))
        self.last_index: torch.Tensor | None = None  # local class indices sampled in the last step

    def extra_repr(self) -> str:
        return (
            f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, "
            f"local=[{self.class_start}, {self.class_start + self.num_local}), "
            f"sample_rate={self.sample_rate}, k={self.k}"
        )

    @torch.no_grad()
    def sample(self, local_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose this step's local classes.

        Args:
            local_labels: ``(N,)`` labels relative to this rank's slice, ``-1`` for other ranks' classes.
        Returns:
            ``(index, remapped)``: sorted int64 local class indices (all positives included) and the labels
            as positions in ``index`` (``-1`` kept).
        """
        positive = torch.unique(local_labels[local_labels >= 0])
        num = max(self.num_sample, positive.numel())
        if num >= self.num_local:
            return torch.arange(self.num_local, device=local_labels.device), local_labels
        score = torch.rand(self.num_local, device=local_labels.device, generator=self.generator)
        score[positive] = 2.0
        index = torch.topk(score, num, sorted=False).indices.sort().values
        remapped = local_labels.clone()
        pos = local_labels >= 0
        remapped[pos] = torch.searchsorted(index, local_labels[pos])
        return index, remapped

    def forward(self, local_embeddings: torch.Tensor, local_labels: torch.Tensor) -> torch.Tensor:
        if local_embeddings.ndim != 2 or local_embeddings.shape[1] != self.embedding_size:
            raise InputError(f"embeddings must be (batch, {self.embedding_size}), got {tuple(local_embeddings.shape)}")
        if local_labels.shape != local_embeddings.shape[:1]:
            raise InputError(f"labels must have shape ({local_embeddings.shape[0]},), got {tuple(local_labels.shape)}")
        labels = local_labels.long().to(local_embeddings.device)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise InputError(f"labels must be in [0, {self.num_classes}), got [{labels.min()}, {labels.max()}]")
        embeddings = all_gather_with_grad(local_embeddings, self.group)
        labels = all_gather_no_grad(labels, self.group)
        in_shard = (labels >= self.class_start) & (labels < self.class_start + self.num_local)
        labels = torch.where(in_shard, labels - self.class_start, torch.full_like(labels, -1))

        if self.training and self.sample_rate < 1.0:
            index, labels = self.sample(labels)
            self.last_index = index
            rows = (index[:, None] * self.k + torch.arange(self.k, device=index.device)).reshape(-1)
            if self.sparse_grad:
                weight = F.embedding(rows, self.weight, sparse=True)
            else:
                weight = self.weight.index_select(0, rows)
        else:
            self.last_index = None
            weight = self.weight
        x = F.normalize(embeddings.float(), dim=1)
        w = F.normalize(weight.float(), dim=1)
        cos = x @ w.t()
        if self.k > 1:
            cos = cos.view(cos.shape[0], -1, self.k).amax(dim=2)
        logits = self.margin_loss(cos.clamp(-1.0, 1.0), labels)
        return dist_cross_entropy(logits, labels, self.group)
