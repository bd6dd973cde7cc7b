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

from arcface.errors import InputError

_STEP_RE = re.compile(r"^step_(\d{8})$")


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot of python, numpy, torch (CPU and CUDA) and named extra generators."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - global state is what we save
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    for name, g in (generators or {}).items():
        state[f"gen:{name}"] = g.get_state()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in (generators or {}).items():
        if f"gen:{name}" in state:
            g.set_state(state[f"gen:{name}"])


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` written atomically (temporary file beside ``path``, fsync, ``os.replace``)."""
    from arcface.io_utils import atomic_write

    with atomic_write(path) as f:
        torch.save(obj, f)


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
    try:
        return torch.load(f, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(f"{f}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


def load_backbone_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Backbone weights from a checkpoint folder, a ``rank0.pt`` file or a plain ``state_dict`` file."""
    state = load_rank_file(path, 0)
    if isinstance(state, dict) and "backbone" in state:
        return state["backbone"]
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise InputError(f"{path}: no backbone weights in this file")


def load_head_weight(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Full class-centre matrix ``(C * K, D)`` (rank shards concatenated in order) and K."""
    p = Path(path)
    first = load_rank_file(p, 0)
    world = int(first.get("world_size", 1))
    parts = [first["head"]["weight"]]
    for r in range(1, world):
        parts.append(load_rank_file(p, r)["head"]["weight"])
    return torch.cat(parts, 0), int(first.get("subcenters", 1))
