"""MobileFaceNet in the layout of insightface's ``arcface_torch`` (``mbf``: blocks (1, 4, 6, 2), scale 2).

Two heads after ``conv_sep`` (1x1 conv to 512 channels + BN + PReLU at 7x7):

* ``"gdc"`` (registered as ``mbf``): the current arcface_torch head, a global depthwise 7x7 conv + BN,
  flatten, ``Linear(512, num_features, bias=False)``, ``BatchNorm1d``. Module names match arcface_torch
  (``layers.*``, ``conv_sep.*``, ``features.layers.*``) so its ``backbone.pth`` state dicts load directly.
* ``"fc"`` (registered as ``mbf_w600k``): the head of insightface's released ``w600k_mbf.onnx`` (buffalo_s),
  read off that graph: 1x1 conv 512 -> 64 + BN + PReLU, flatten (64*7*7 = 3136), ``Linear(3136,
  num_features)`` with bias, ``BatchNorm1d``. :func:`arcface.nn.convert.load_onnx_recognizer` loads that
  file into this layout exactly.

Input ``(N, 3, 112, 112)`` float32, RGB, ``(pixel - 127.5) / 127.5``; output ``(N, num_features)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from arcface.nn.backbones.registry import register_model


class ConvBlock(nn.Module):
    """Conv (no bias) + BatchNorm2d + PReLU; parameters under ``layers.0/1/2``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(nn.Module):
    """Conv (no bias) + BatchNorm2d, no activation; parameters under ``layers.0/1``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand to ``groups`` channels, depthwise 3x3 (stride), 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, residual: bool, stride: int, groups: int):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(cin, groups),
            ConvBlock(groups, groups, kernel=3, stride=stride, padding=1, groups=groups),
            LinearBlock(groups, cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class Residual(nn.Module):
    """``num_block`` residual :class:`DepthWise` blocks at constant width."""

    def __init__(self, c: int, num_block: int, groups: int):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise conv head: depthwise 7x7 + BN, flatten, Linear (no bias), BatchNorm1d."""

    def __init__(self, num_features: int):
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(512, 512, kernel=7, groups=512),
            nn.Flatten(),
            nn.Linear(512, num_features, bias=False),
            nn.BatchNorm1d(num_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet for 112x112 faces.

    Args:
        num_features: embedding length.
        blocks: residual depths of the four stages (arcface_torch ``mbf``: ``(1, 4, 6, 2)``).
        scale: width multiplier (64 * scale channels in the first stages).
        head: ``"gdc"`` (arcface_torch) or ``"fc"`` (insightface ``w600k_mbf.onnx``); see the module doc.
    """

    def __init__(
        self,
        num_features: int = 512,
        blocks: Sequence[int] = (1, 4, 6, 2),
        scale: int = 2,
        head: Literal["gdc", "fc"] = "gdc",
    ) -> None:
        super().__init__()
        if head not in ("gdc", "fc"):
            raise ValueError(f"head must be 'gdc' or 'fc', got {head!r}")
        c1, c2 = 64 * scale, 128 * scale
        self.head = head
        layers: list[nn.Module] = [ConvBlock(3, c1, kernel=3, stride=2, padding=1)]
        if blocks[0] == 1:
            layers.append(ConvBlock(c1, c1, kernel=3, stride=1, padding=1, groups=64))
        else:
            layers.append(Residual(c1, blocks[0], groups=128))
        layers += [
            DepthWise(c1, c1, False, 2, groups=128),
            Residual(c1, blocks[1], groups=128),
            DepthWise(c1, c2, False, 2, groups=256),
            Residual(c2, blocks[2], groups=256),
            DepthWise(c2, c2, False, 2, groups=512),
            Residual(c2, blocks[3], groups=256),
        ]
        self.layers = nn.ModuleList(layers)
        self.conv_sep = ConvBlock(c2, 512)
        if head == "gdc":
            self.features: nn.Module = GDC(num_features)
        else:
            self.reduce = ConvBlock(512, 64)
            self.fc = nn.Linear(64 * 7 * 7, num_features)
            self.features = nn.BatchNorm1d(num_features)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        x = self.conv_sep(x)
        if self.head == "gdc":
            return self.features(x)
        x = torch.flatten(self.reduce(x), 1)
        return self.features(self.fc(x))


@register_model("mbf")
def mbf(num_features: int = 512, blocks: Sequence[int] = (1, 4, 6, 2), scale: int = 2) -> MobileFaceNet:
    """arcface_torch ``mbf``: MobileFaceNet, blocks (1, 4, 6, 2), scale 2, GDC head."""
    return MobileFaceNet(num_features, blocks, scale, head="gdc")


@register_model("mbf_w600k")
def mbf_w600k(num_features: int = 512) -> MobileFaceNet:
    """The MobileFaceNet of insightface's ``w600k_mbf.onnx``: blocks (1, 4, 6, 2), scale 2, conv-fc head."""
    return MobileFaceNet(num_features, (1, 4, 6, 2), 2, head="fc")
