"""Collectives with correct gradients, and a softmax cross-entropy over classes sharded across ranks.

Every function also works in a single process without ``torch.distributed`` initialised (world size 1),
where the collectives are identities.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def dist_info(group: Any = None) -> tuple[int, int]:
    """``(rank, world_size)`` of ``group``; ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


class _AllGather(torch.autograd.Function):
    """Concatenate equal-shaped tensors of all ranks along dim 0; backward sums the gradient of every
    rank's copy and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: Any) -> torch.Tensor:
        rank, world = dist_info(group)
        ctx.rank, ctx.world, ctx.group, ctx.n = rank, world, group, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n], None


def all_gather_with_grad(x: torch.Tensor, group: Any = None) -> torch.Tensor:
    """All-gather along dim 0 (every rank must pass the same shape) with a gradient flowing back to each
    rank's input: ``d loss / d x_r = sum over ranks of d loss_rank / d gathered[r-th slice]``."""
    _, world = dist_info(group)
    if world == 1:
        return x
    return _AllGather.apply(x, group)


def all_gather_no_grad(x: torch.Tensor, group: Any = None) -> torch.Tensor:
    """All-gather along dim 0 without gradient (labels)."""
    _, world = dist_info(group)
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts, dim=0)


def _all_reduce(x: torch.Tensor, op: Any, group: Any) -> torch.Tensor:
    if dist_info(group)[1] > 1:
        dist.all_reduce(x, op=op, group=group)
    return x


class _DistCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, group: Any) -> torch.Tensor:
        n = logits.shape[0]
        with torch.no_grad():
            row_max = logits.max(dim=1).values if logits.shape[1] else logits.new_full((n,), -torch.inf)
            _all_reduce(row_max, dist.ReduceOp.MAX, group)
            prob = torch.exp(logits - row_max[:, None])
            sum_exp = prob.sum(dim=1)
            _all_reduce(sum_exp, dist.ReduceOp.SUM, group)
            prob.div_(sum_exp[:, None])
            rows = torch.nonzero(labels >= 0, as_tuple=True)[0]
            target = logits.new_zeros(n)
            target[rows] = logits[rows, labels[rows]]
            _all_reduce(target, dist.ReduceOp.SUM, group)
            loss = (torch.log(sum_exp) + row_max - target).mean()
        ctx.save_for_backward(prob, rows, labels[rows])
        return loss

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        prob, rows, cols = ctx.saved_tensors
        grad = prob.clone()
        grad[rows, cols] -= 1.0
        grad.mul_(grad_out / prob.shape[0])
        return grad, None, None


def dist_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, group: Any = None) -> torch.Tensor:
    """Mean softmax cross-entropy when each rank holds a slice of the class columns.

    Args:
        logits: ``(N, C_local)`` this rank's logits for the same N rows on every rank.
        labels: ``(N,)`` int64 column of the target within this rank's slice, ``-1`` where the target
            class lives on another rank (each row's target must live on exactly one rank).
    Returns:
        The scalar ``mean_i [log sum_j exp(z_ij) - z_i,y_i]`` over all classes of all ranks; its gradient
        w.r.t. ``logits`` is ``(softmax - onehot) / N`` for this rank's columns.
    """
    return _DistCrossEntropy.apply(logits, labels.long(), group)
