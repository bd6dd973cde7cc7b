"""Parameter count and FLOPs (multiply-adds) of a model, measured with forward hooks.

FLOPs here follow the face-recognition literature (insightface, the MobileFaceNet paper): the number of
multiply-accumulate operations of convolution and linear layers for one input, in units of 1e9 ("GFLOPs").
BatchNorm, activations and additions are not counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelProfile:
    """Size and cost of a model for one input of ``input_size``.

    Attributes:
        params: number of parameters (all, trainable or not).
        macs: multiply-accumulates of conv and linear layers for ONE input (batch 1).
        input_size: ``(height, width)`` used.
    """

    params: int
    macs: int
    input_size: tuple[int, int]

    @property
    def gflops(self) -> float:
        """Multiply-adds in units of 1e9 (the figure papers call GFLOPs)."""
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        """Parameters in millions."""
        return self.params / 1e6


def profile_model(model: nn.Module, input_size: tuple[int, int] = (112, 112)) -> ModelProfile:
    """Count parameters and conv/linear multiply-adds of ``model`` on one ``(1, 3, H, W)`` input.

    Shapes are traced on a copy of the model on the ``meta`` device (no arithmetic); models with layers
    that cannot run there are run once for real, in eval mode (their training flag is restored).
    """
    macs = 0

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        nonlocal macs
        kh, kw = m.kernel_size
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inp, out) -> None:
        nonlocal macs
        macs += out.numel() // out.shape[0] * m.in_features

    def run(net: nn.Module, device: torch.device) -> None:
        handles = []
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                handles.append(m.register_forward_hook(conv_hook))
            elif isinstance(m, nn.Linear):
                handles.append(m.register_forward_hook(linear_hook))
        try:
            with torch.no_grad():
                net.eval()(torch.zeros(1, 3, *input_size, device=device))
        finally:
            for h in handles:
                h.remove()

    try:  # shapes are all the hooks need: run a copy on the "meta" device, which computes nothing
        run(copy.deepcopy(model).to("meta"), torch.device("meta"))
    except (NotImplementedError, RuntimeError):
        macs = 0
        was_training = model.training
        p = next(model.parameters(), None)
        try:
            run(model, p.device if p is not None else torch.device("cpu"))
        finally:
            model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return ModelProfile(params=params, macs=macs, input_size=tuple(input_size))
