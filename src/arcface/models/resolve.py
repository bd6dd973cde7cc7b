"""One parser for every ``--model`` / ``--pack`` / ``SOURCE`` / ``run.init_from`` string, and the loaders.

``parse_model(text)`` classifies a string, with optional source prefixes (as open_clip's ``hf-hub:``):

=====================  =========================================================================
``pack:NAME_OR_DIR``   a model pack: registered name (``buffalo_sc``) or a folder
``onnx:FILE``          an ONNX recognizer
``ckpt:PATH``          a torch checkpoint: a run folder, a ``checkpoints/step_N`` folder (N padded or not), a ``.pt``
no prefix              ``*.onnx`` -> onnx; ``*.pt``/``*.pth`` or a folder holding ``rank0.pt`` or
                       ``checkpoints/`` -> ckpt; any other folder or a bare name -> pack
=====================  =========================================================================

Every command resolves its model strings here, so ``arcface eval --model``, ``arcface export onnx
SOURCE``, ``arcface train run.init_from=`` and ``--pack`` accept the same spellings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arcface.errors import InputError
from arcface.models.packs import load_pack

Kind = Literal["pack", "onnx", "ckpt"]
PREFIXES: tuple[Kind, ...] = ("pack", "onnx", "ckpt")


@dataclass(frozen=True)
class ModelRef:
    """A classified model string: ``kind`` and ``value`` (a pack name or a path)."""

    kind: Kind
    value: str

    @property
    def path(self) -> Path:
        return Path(self.value).expanduser()

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def _is_checkpoint_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "rank0.pt").is_file() or (p / "checkpoints").is_dir())


_STEP = re.compile(r"^step_(\d+)$")


def _step_alias(s: str) -> str:
    """``.../step_100`` -> ``.../step_00000100`` when only the zero-padded checkpoint folder exists."""
    p = Path(s).expanduser()
    m = _STEP.match(p.name)
    if m and not p.exists():
        padded = p.with_name(f"step_{int(m.group(1)):08d}")
        if padded.is_dir():
            return str(padded)
    return s


def parse_model(text: str | os.PathLike | ModelRef) -> ModelRef:
    """Classify ``text`` (see the module docstring); raises :class:`InputError` for a missing file."""
    if isinstance(text, ModelRef):
        return text
    s = os.fspath(text).strip()
    if not s:
        raise InputError("an empty model name was given")
    s = _step_alias(s)
    head, sep, rest = s.partition(":")
    if sep and head in PREFIXES and rest:
        ref = ModelRef(head, _step_alias(rest))  # type: ignore[arg-type]
    else:
        p = Path(s).expanduser()
        suffix = p.suffix.lower()
        if suffix == ".onnx":
            ref = ModelRef("onnx", s)
        elif suffix in (".pt", ".pth") or _is_checkpoint_dir(p):
            ref = ModelRef("ckpt", s)
        else:
            ref = ModelRef("pack", s)
    if ref.kind in ("onnx", "ckpt") and not ref.path.exists():
        raise InputError(f"{ref.value}: model file not found")
    return ref


def resolve_pack(text: str | os.PathLike | ModelRef | None = None) -> Any:
    """The :class:`arcface.models.packs.Pack` named by ``text`` (``None``: ``$ARCFACE_PACK`` or the default pack)."""

    if text is None:
        return load_pack(None)
    ref = parse_model(text)
    if ref.kind != "pack":
        raise InputError(f"{ref.value}: a model pack (name or folder) is needed here, not a {ref.kind} file")
    return load_pack(ref.value)


def resolve_embedder(text: str | os.PathLike | ModelRef | None = None) -> Any:
    """An :class:`arcface.embed.Embedder` for ``text``.

    A pack gives its ONNX recognizer; an ONNX file gives an :class:`~arcface.embed.onnx.OnnxEmbedder`
    (with the ``config.json``/``<stem>.json`` spec beside it when present); a checkpoint gives a
    :class:`~arcface.embed.torch.TorchEmbedder` (needs the ``train`` extra).
    """
    ref = parse_model(text) if text is not None else ModelRef("pack", "")
    if ref.kind == "pack":
        from arcface.embed.onnx import OnnxEmbedder

        pack = resolve_pack(ref.value or None)
        return OnnxEmbedder(pack.recognizer, spec=pack.recognizer_spec)
    if ref.kind == "onnx":
        from arcface.embed.onnx import OnnxEmbedder
        from arcface.spec import ARCFACE_RECOGNITION, ModelSpec

        return OnnxEmbedder(ref.path, spec=ModelSpec.beside(ref.path) or ARCFACE_RECOGNITION)
    from arcface.embed.torch import TorchEmbedder

    return TorchEmbedder.from_checkpoint(ref.path)
