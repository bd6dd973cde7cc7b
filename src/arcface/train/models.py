"""Backbones and margin heads as the trainer builds them.

Backbones come from :func:`arcface.nn.create_model` (``iresnet18..200``, ``mbf``, ...). The trainer adds
``tiny``: a 4-stage CNN for CPU tests and the synthetic-data check, small enough to train in seconds.

Heads map ``(embeddings, labels)`` to the mean margin-softmax cross-entropy. The head is always
:class:`arcface.nn.PartialFC`: class centres (optionally K sub-centres per class) sharded across ranks,
a fraction sampled per step; in one process at sample rate 1 it equals a full FC layer.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from arcface.errors import InputError
from arcface.nn import create_model
from arcface.nn.margins import CombinedMarginLoss
from arcface.nn.partial_fc import PartialFC

log = logging.getLogger(__name__)


class TinyNet(nn.Module):
    """A small CNN for CPU tests: four stride-2 3x3 conv stages (BN + ReLU), ``width * 2**i`` channels,
    ``extra`` more stride-1 convs in each of the last two stages, then a linear embedding + BatchNorm1d.

    Input ``(N, 3, 112, 112)`` float, RGB, ``(x - 127.5) / 127.5``; output ``(N, num_features)``.
    """

    def __init__(
        self, num_features: int = 128, width: int = 16, dropout: float = 0.0, extra: int = 1, norm: str = "batch"
    ) -> None:
        super().__init__()
        if norm not in ("batch", "group"):
            raise InputError(f"TinyNet norm must be 'batch' or 'group', got {norm!r}")

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            bn = nn.BatchNorm2d(cout) if norm == "batch" else nn.GroupNorm(min(4, cout), cout)
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn, nn.ReLU(inplace=True)]

        layers: list[nn.Module] = []
        cin = 3
        for i in range(4):
            cout = width * 2**i
            layers += block(cin, cout, 2)
            if i >= 2:
                for _ in range(extra):
                    layers += block(cout, cout, 1)
            cin = cout
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin * 7 * 7, num_features)
        self.bn = nn.BatchNorm1d(num_features) if norm == "batch" else nn.LayerNorm(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.bn(self.fc(self.dropout(torch.flatten(x, 1))))


def build_backbone(
    network: str, embedding_size: int, dropout: float = 0.0, width: int = 0, norm: str = "batch"
) -> nn.Module:
    """The backbone named ``network`` (``tiny`` or a name of :func:`arcface.nn.create_model`)."""
    if network == "tiny":
        return TinyNet(embedding_size, width or 16, dropout, norm=norm)
    kwargs: dict[str, Any] = {}
    if dropout:
        kwargs["dropout"] = dropout
    if width:
        kwargs["width"] = width
    return create_model(network, num_features=embedding_size, **kwargs)


def build_margin(margin_list: tuple[float, float, float], scale: float) -> nn.Module:
    m1, m2, m3 = margin_list
    return CombinedMarginLoss(s=scale, m1=m1, m2=m2, m3=m3)


def build_head(
    embedding_size: int,
    num_classes: int,
    margin_list: tuple[float, float, float],
    scale: float,
    sample_rate: float = 1.0,
    subcenters: int = 1,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """The margin head: :class:`arcface.nn.PartialFC` (class centres sharded across the ranks of the
    process group; at ``sample_rate == 1`` in one process it equals a full FC layer). ``generator``
    drives Partial FC's class sampling (saved in checkpoints)."""
    if num_classes < 2:
        raise InputError(f"training needs at least 2 classes, got {num_classes}")
    return PartialFC(
        embedding_size=embedding_size,
        num_classes=num_classes,
        sample_rate=sample_rate,
        margin_loss=build_margin(margin_list, scale),
        num_subcenters=subcenters,
        generator=generator,
    )


def head_weight(head: nn.Module) -> torch.Tensor:
    """The (local) class-centre matrix ``(C_local * K, D)`` of a head."""
    for name in ("weight", "weight_local"):
        w = getattr(head, name, None)
        if isinstance(w, torch.Tensor):
            return w.detach()
    raise InputError(f"cannot find the class-centre weight of head {type(head).__name__}")
