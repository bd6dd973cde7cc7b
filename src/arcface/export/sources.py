"""Where a backbone to export comes from: a module, a training checkpoint, a state dict, an ONNX file or a pack.

:func:`load_backbone` resolves any of these into a torch module in eval mode (CPU, float32) plus the facts
the exporter records in ``config.json`` (architecture name, source, the source's input spec).

Accepted sources:

* an ``nn.Module`` (``arch`` names it in the config; default: its class name);
* a training checkpoint of :mod:`arcface.train` (a run folder, a ``checkpoints/step_XXXXXXXX`` folder or its
  ``rank0.pt``): the backbone is rebuilt from the checkpoint's own config (``model.network``, ...);
* a ``{"arch": ..., "state_dict": ...}`` file, or an arcface_torch ``backbone.pth`` state dict (``arch`` required);
* an insightface-style ONNX recognizer (imported with :func:`arcface.nn.convert.load_onnx_recognizer`);
* a model pack name or folder (``buffalo_sc``): its recognizer, imported as above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcface.errors import InputError, ModelError, first_line, require
from arcface.spec import ModelSpec

torch = require("torch", "train")
nn = torch.nn


@dataclass
class LoadedBackbone:
    """A resolved export source.

    Attributes:
        model: the backbone, eval mode, CPU, float32; maps ``(N, 3, 112, 112)`` to ``(N, D)`` raw embeddings.
        arch: architecture name written to config.json.
        kind: ``module``, ``train-checkpoint``, ``state-dict``, ``onnx`` or ``pack``.
        source: human-readable origin (a path or pack name).
        onnx_path: the source ONNX file when the weights were imported from one (for a round-trip check).
        spec: the source's own input conventions when it states them (pack / sibling JSON), else None.
        run_dir: the training run folder of a training checkpoint (its ``holdout.tsv`` calibrates the export).
    """

    model: Any
    arch: str
    kind: str
    source: str
    onnx_path: Path | None = None
    spec: ModelSpec | None = None
    run_dir: Path | None = None


def _finish(model: Any, **kw: Any) -> LoadedBackbone:
    model = model.float().cpu().eval()
    return LoadedBackbone(model=model, **kw)


def _from_onnx(path: Path, arch: str | None, kind: str, source: str, spec: ModelSpec | None) -> LoadedBackbone:
    from arcface.nn.convert import detect_arch, load_onnx_recognizer

    arch = arch or detect_arch(path)[0]
    model = load_onnx_recognizer(path, arch)
    if spec is None:
        spec = ModelSpec.beside(path)
    return _finish(model, arch=arch, kind=kind, source=source, onnx_path=path, spec=spec)


def _from_pack(name: Any, arch: str | None) -> LoadedBackbone:
    from arcface.models.packs import load_pack

    pack = load_pack(name)
    return _from_onnx(pack.recognizer, arch, "pack", f"pack {pack.name} ({pack.recognizer})", pack.recognizer_spec)


def _load_torch_file(path: Path) -> Any:
    """Read a ``.pt``/``.pth`` (state dict or training checkpoint) with the weights-only loader."""
    from arcface import torchfile

    return torchfile.load(path, "checkpoint")


def _from_train_state(state: dict, arch: str | None, source: str) -> LoadedBackbone:
    from arcface.train.config import TrainConfig
    from arcface.train.models import build_backbone

    cfg = TrainConfig.from_dict(state["config"]).model
    if arch is not None and arch != cfg.network:
        raise InputError(f"{source}: --arch {arch!r} contradicts the checkpoint's network {cfg.network!r}")
    model = build_backbone(cfg.network, cfg.embedding_size, 0.0, cfg.width, cfg.norm)
    try:
        model.load_state_dict(state["backbone"])
    except RuntimeError as exc:
        raise ModelError(f"{source}: backbone weights do not fit {cfg.network!r} ({first_line(exc)})") from exc
    return _finish(model, arch=cfg.network, kind="train-checkpoint", source=source)


def _from_torch_file(path: Path, arch: str | None) -> LoadedBackbone:
    from arcface.nn.convert import load_arcface_torch

    state = _load_torch_file(path)
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict or a training checkpoint, got {type(state).__name__}")
    if "backbone" in state and "config" in state:
        from arcface.train.holdout import run_dir_of

        loaded = _from_train_state(state, arch, str(path))
        loaded.run_dir = run_dir_of(path)
        return loaded
    if "state_dict" in state and isinstance(state.get("arch"), str):
        if arch is not None and arch != state["arch"]:
            raise InputError(f"{path}: --arch {arch!r} contradicts the checkpoint's arch {state['arch']!r}")
        arch = state["arch"]
    if arch is None:
        raise InputError(f"{path}: the checkpoint does not name its architecture; pass --arch (e.g. iresnet50, mbf)")
    _check_arch(arch)
    return _finish(load_arcface_torch(state, arch), arch=arch, kind="state-dict", source=str(path))


def _check_arch(arch: str) -> None:
    from arcface.nn import list_models

    if arch not in list_models():
        raise InputError(f"unknown arch {arch!r}; registered models: {', '.join(list_models())}")


def load_backbone(source: Any, arch: str | None = None) -> LoadedBackbone:
    """Resolve ``source`` (see the module docstring) into a backbone ready to export.

    Args:
        source: an ``nn.Module``, a path (checkpoint file or folder, ``.onnx``, pack folder) or a pack name.
        arch: registered backbone name; needed for bare state dicts, optional elsewhere (checked when given).
    Raises:
        InputError: missing file, unknown arch, or a state dict without an arch;
        ModelError: unreadable or incompatible weights.
    """
    if isinstance(source, nn.Module):
        return _finish(source, arch=arch or type(source).__name__, kind="module", source=type(source).__name__)
    if not isinstance(source, str | os.PathLike):
        raise InputError(f"cannot export a {type(source).__name__}; pass an nn.Module, a path or a pack name")
    from arcface.models import parse_model, resolve_pack

    ref = parse_model(source)
    path = ref.path
    if ref.kind == "onnx":
        if arch is not None:
            _check_arch(arch)
        return _from_onnx(path, arch, "onnx", str(path), None)
    if ref.kind == "ckpt":
        if path.is_file():
            return _from_torch_file(path, arch)
        from arcface.train.checkpoint import latest_checkpoint

        if (path / "rank0.pt").is_file():
            return _from_torch_file(path / "rank0.pt", arch)
        latest = latest_checkpoint(path)
        if latest is None:
            raise InputError(f"{path}: run folder holds no finished checkpoint (checkpoints/step_*/rank0.pt)")
        return _from_torch_file(latest / "rank0.pt", arch)
    if arch is not None:
        _check_arch(arch)
    try:
        pack = resolve_pack(ref)
    except ModelError as exc:
        raise InputError(f"{ref.value}: no such file, and not a model pack ({exc})") from exc
    return _from_pack(pack, arch)
