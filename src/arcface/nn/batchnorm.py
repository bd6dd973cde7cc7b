"""BatchNorm for fine-tuning imported models: statistics re-estimated from data, or frozen.

A recognizer imported from an insightface ONNX graph has its BatchNorms folded into the convolutions
(:mod:`arcface.nn.convert`): each BN is an identity with running mean 0 and variance 1. That is exact in eval
mode, but in training mode a BN normalises with the *batch* statistics, which are nothing like 0 and 1, so
the network computes something else (measured: training-mode vs eval-mode embeddings of the same real crops,
mean cosine 0.26) and every step overwrites the running statistics.

:func:`restore_statistics` gives every BN the statistics of its input on real data while keeping the eval-mode
function exactly: a BN in eval mode is the per-channel affine map ``y = a * x + c`` with
``a = gamma / sqrt(var + eps)`` and ``c = beta - a * mean``; with the measured input mean ``m`` and (biased)
variance ``v`` it is rewritten as ``mean = m``, ``var = v``, ``gamma = a * sqrt(v + eps)``, ``beta = c + a * m``,
the same map, whose training-mode output on batches like the data is now close to it.
:func:`freeze` instead keeps every BN in eval mode during training (statistics fixed, affine parameters
still learnt).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def batchnorms(model: nn.Module) -> list[nn.Module]:
    """The model's BatchNorm1d/2d layers."""
    return [m for m in model.modules() if isinstance(m, _BN)]


@torch.no_grad()
def restore_statistics(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm's running statistics from ``batches`` without changing the eval-mode output.

    Args:
        model: the network (its mode is restored afterwards).
        batches: input tensors (e.g. normalised aligned crops ``(N, 3, 112, 112)``), on the model's device.
    Returns:
        The number of samples seen.
    """
    bns = batchnorms(model)
    sums: dict[nn.Module, list[torch.Tensor | int]] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach().double()
        dims = [0] + list(range(2, x.ndim))
        acc = sums.setdefault(module, [0, 0.0, 0.0])
        acc[0] += x.numel() // x.shape[1]
        acc[1] = acc[1] + x.sum(dim=dims)
        acc[2] = acc[2] + (x * x).sum(dim=dims)

    handles = [m.register_forward_pre_hook(hook) for m in bns]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for x in batches:
            model(x)
            seen += len(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m in bns:
        if m not in sums or not m.affine:
            continue  # without affine parameters the map could not be kept
        n, s1, s2 = sums[m]
        mean = s1 / n
        var = (s2 / n - mean * mean).clamp_min(0.0)
        old_mean = m.running_mean.double()
        old_var = m.running_var.double()
        gamma, beta = m.weight.double(), m.bias.double()
        a = gamma / torch.sqrt(old_var + m.eps)
        c = beta - a * old_mean
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
        m.weight.copy_(a * torch.sqrt(var + m.eps))
        m.bias.copy_(c + a * mean)
    return seen


def freeze(model: nn.Module) -> None:
    """Put every BatchNorm of ``model`` in eval mode (call after each ``model.train()``)."""
    for m in batchnorms(model):
        m.eval()
