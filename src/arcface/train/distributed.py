"""torch.distributed set-up from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

gloo on CPU, nccl on CUDA. Single-node::

    torchrun --standalone --nproc_per_node=8 -m arcface train ms1mv3_r50 data.path=/data/ms1m

Multi-node (run on every node, NODE_RANK = 0..N-1; MASTER = node 0's address)::

    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK \\
        --rdzv_backend=c10d --rdzv_endpoint=$MASTER:29500 -m arcface train ms1mv3_r50 data.path=...
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistContext:
    """Read torchrun's environment, pick the device, and initialise the process group if needed.

    ``device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda:")
    if device == "cuda" and not torch.cuda.is_available():
        from arcface.errors import InputError

        raise InputError("run.device=cuda but CUDA is not available")
    if use_cuda:
        dev = torch.device(device if device.startswith("cuda:") else f"cuda:{local_rank}")
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    elif world > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistContext(rank, world, local_rank, dev)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj):
    if dist.is_available() and dist.is_initialized():
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj
