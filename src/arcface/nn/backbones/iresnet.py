"""IResNet (improved ResNet of ArcFace), in the layout of insightface's ``arcface_torch``.

Parameter names match ``arcface_torch``'s ``backbone.pth`` state dicts, so they load directly:
``conv1, bn1, prelu, layer1..layer4`` (blocks ``bn1, conv1, bn2, prelu, conv2, bn3, downsample``),
``bn2, dropout, fc, features``.

Input ``(N, 3, 112, 112)`` float32, RGB, ``(pixel - 127.5) / 127.5`` (range ``[-1, 1]``);
output ``(N, num_features)`` embeddings, not normalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from arcface.nn.backbones.registry import register_model

BN_EPS = 1e-5


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation style block: BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """IResNet backbone for 112x112 faces.

    Args:
        layers: number of blocks in each of the four stages (64, 128, 256, 512 channels, each stride 2).
        num_features: embedding length.
        dropout: dropout probability before the final linear layer (0 disables it).
        freeze_feature_scale: keep ``features.weight`` (the scale of the final BatchNorm1d) fixed at 1,
            as arcface_torch does; it then gets no gradient.
    """

    fc_scale = 7 * 7

    def __init__(
        self,
        layers: Sequence[int],
        num_features: int = 512,
        dropout: float = 0.0,
        freeze_feature_scale: bool = True,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 stage depths, got {list(layers)}")
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=BN_EPS)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        stages = []
        for planes, depth in zip((64, 128, 256, 512), layers, strict=True):
            blocks = [IBasicBlock(inplanes, planes, stride=2)]
            blocks += [IBasicBlock(planes, planes) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(512, eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        self._init_weights()
        if freeze_feature_scale:
            self.features.weight.requires_grad_(False)

    def _init_weights(self) -> None:
        # He (fan-out) init rather than arcface_torch's N(0, 0.1): with N(0, 0.1) an untrained IResNet-100/200
        # overflows to inf/NaN in eval mode; trained weights are unaffected either way.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.bn2(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        return self.features(self.fc(x))


_DEPTHS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
    "iresnet200": (6, 26, 60, 6),
}


def _make_factory(name: str, depths: tuple[int, int, int, int]):
    def factory(num_features: int = 512, dropout: float = 0.0, freeze_feature_scale: bool = True) -> IResNet:
        return IResNet(depths, num_features, dropout, freeze_feature_scale)

    factory.__name__ = name
    factory.__doc__ = f"IResNet with stage depths {depths} (arcface_torch ``{name.replace('iresnet', 'r')}``)."
    return register_model(name)(factory)


for _name, _depths in _DEPTHS.items():
    _make_factory(_name, _depths)

IRESNET_DEPTHS = dict(_DEPTHS)
