"""The one place that reads and writes torch files (``.pt``/``.pth`` checkpoints and state dicts).

Every read is ``torch.load(..., weights_only=True)``: torch's restricted unpickler admits tensors,
containers (dict, list, tuple, OrderedDict), numbers, strings, ``None`` and torch's own storage types,
and refuses any other global. A crafted pickle that would call ``os.system`` (or import anything) is
refused with :class:`~arcface.errors.InputError` naming the file and the refused global; no code runs.
There is no fallback to ``weights_only=False`` anywhere in arcface.

Files written by :func:`save` go through :func:`arcface.io_utils.atomic_write` (temporary file, fsync,
rename), so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from arcface.errors import InputError, first_line, require

torch = require("torch", "train")

_GLOBAL = re.compile(r"(?:unsupported GLOBAL|global) ([\w.]+)")


def load(path: str | os.PathLike, what: str = "torch file") -> Any:
    """Load a torch file with the weights-only unpickler (CPU tensors).

    Args:
        path: the ``.pt``/``.pth`` file.
        what: how the file is named in error messages (``"checkpoint"``, ``"run.init_from"``, ...).
    Raises:
        InputError: the file is missing, not a torch file, or needs code execution to load (a pickle
            referring to a global outside torch's allow-list); the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p}: not found (no such file)")
    try:
        return torch.load(os.fspath(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        culprit = f" (it refers to {found.group(1)})" if found else ""
        raise InputError(
            f"{what} {p}: refused: loading it would need to run code from the file{culprit}; arcface only "
            "loads tensors, numbers, strings and containers (weights_only). Re-save it as a plain state dict."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as exc:
        raise InputError(f"{what} {p}: not a readable torch file ({type(exc).__name__}: {first_line(exc)})") from None


def save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` written atomically (temporary file beside ``path``, fsync, rename)."""
    from arcface.io_utils import atomic_write

    with atomic_write(path) as f:
        torch.save(obj, f)
