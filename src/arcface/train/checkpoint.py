"""Atomic, rotating checkpoints with everything needed for an exact resume.

Layout: ``OUTPUT/checkpoints/step_00001000/rank0.pt`` (one file per rank: the backbone (rank 0),
this rank's head shard, the optimiser and scheduler states, the RNG states of python/numpy/torch and
of the head's sampling generator, and the counters ``step``, ``epoch``, ``micro_in_epoch``).

Each file is written to a temporary name then ``os.replace``-d; the step folder is first assembled as
``step_XXXXXXXX.tmp`` and renamed when every rank has written, so a crash never leaves a half checkpoint
that resume would pick up. Only the last ``keep_last`` step folders are kept.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from arcface import torchfile
from arcface.errors import InputError

_STEP_RE = re.compile(r"^step_(\d{8})$")


def _numpy_state() -> dict[str, Any]:
    """numpy's global MT19937 state as tensors and numbers (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - global state is what we save
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_state(d: dict[str, Any]) -> None:
    keys = np.asarray(d["keys"].numpy(), dtype=np.uint32)
    np.random.set_state((d["name"], keys, int(d["pos"]), int(d["has_gauss"]), float(d["cached_gaussian"])))  # noqa: NPY002


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot of python, numpy, torch (CPU and CUDA) and named extra generators.

    Every value is a tensor, a number or a tuple of numbers, so checkpoints load with ``weights_only=True``.
    """
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    for name, g in (generators or {}).items():
        state[f"gen:{name}"] = g.get_state()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        if f"gen:{name}" in state:
            g.set_state(state[f"gen:{name}"])


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` written atomically (see :func:`arcface.torchfile.save`)."""
    torchfile.save(obj, path)


def checkpoint_root(output: str | os.PathLike) -> Path:
    return Path(output) / "checkpoints"


def step_dir(output: str | os.PathLike, step: int) -> Path:
    return checkpoint_root(output) / f"step_{step:08d}"


def tmp_step_dir(output: str | os.PathLike, step: int) -> Path:
    return checkpoint_root(output) / f"step_{step:08d}.tmp"


def list_checkpoints(output: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    root = checkpoint_root(output)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_RE.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_RE.match(p.name).group(1)))


def latest_checkpoint(output: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(output)
    return ckpts[-1] if ckpts else None


def finalize(output: str | os.PathLike, step: int, keep_last: int) -> Path:
    """Rename the assembled temporary folder into place and delete the oldest beyond ``keep_last``."""
    tmp, final = tmp_step_dir(output, step), step_dir(output, step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep_last > 0:
        for old in list_checkpoints(output)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_rank_file(ckpt: str | os.PathLike, rank: int) -> dict[str, Any]:
    """The state of ``rank`` from a checkpoint folder (or a single ``.pt`` file)."""
    p = Path(ckpt)
    f = p / f"rank{rank}.pt" if p.is_dir() else p
    if not f.is_file():
        raise InputError(f"{ckpt}: checkpoint has no state for rank {rank} ({f.name} missing)")
    state = torchfile.load(f, "checkpoint")
    if not isinstance(state, dict):
        raise InputError(f"checkpoint {f}: expected a dict of states, got {type(state).__name__}")
    return state


#: Keys every trainer checkpoint file holds (``backbone`` only on rank 0).
TRAIN_STATE_KEYS = ("head", "optimizer", "scheduler", "rng", "step", "epoch", "micro_in_epoch", "config")


def check_train_state(state: dict[str, Any], where: str | os.PathLike, rank: int) -> None:
    """Raise :class:`InputError` naming the file when a checkpoint lacks what resuming needs."""
    need = TRAIN_STATE_KEYS + (("backbone",) if rank == 0 else ())
    missing = [k for k in need if k not in state]
    if missing:
        raise InputError(
            f"checkpoint {where}: not a complete arcface training checkpoint (missing {', '.join(missing)}); "
            "resume from another step or start a new run.output"
        )


def load_backbone_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Backbone weights from a checkpoint folder, a ``rank0.pt`` file or a plain ``state_dict`` file."""
    state = load_rank_file(path, 0)
    if isinstance(state.get("backbone"), dict):
        return state["backbone"]
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise InputError(f"{path}: no backbone weights in this file")


def load_head_weight(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Full class-centre matrix ``(C * K, D)`` (rank shards concatenated in order) and K."""
    p = Path(path)
    first = load_rank_file(p, 0)
    world = int(first.get("world_size", 1))
    parts = [_head_weight(first, p)]
    for r in range(1, world):
        parts.append(_head_weight(load_rank_file(p, r), p))
    return torch.cat(parts, 0), int(first.get("subcenters", 1))


def _head_weight(state: dict[str, Any], where: Path) -> torch.Tensor:
    head = state.get("head")
    weight = head.get("weight") if isinstance(head, dict) else None
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise InputError(f"checkpoint {where}: no margin-head weight matrix (head.weight) in it")
    return weight
