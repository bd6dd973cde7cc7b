"""Typed training configuration: dataclasses, published presets, ``key=value`` overrides, JSON/TOML files.

A :class:`TrainConfig` has five sections (``data``, ``model``, ``head``, ``optim``, ``run``). Any field can
be overridden with ``section.key=value`` or, when the key name is unique, ``key=value`` (or the
command-line forms ``--key value`` / ``--section.key value``). Values are parsed to the field's type
(``bool`` accepts true/false/1/0/yes/no; tuples take commas or JSON lists; ``None`` via ``none``).

Presets carry the hyper-parameters published with insightface's ``arcface_torch`` configs
(``configs/ms1mv3_r50.py``, ``ms1mv3_r100.py``, ``glint360k_r100.py``, ``wf12m_mbf.py``,
``wf42m_pfc02_r100.py``): SGD lr 0.1 momentum 0.9, batch 128 per GPU, 20 epochs, embedding 512,
ArcFace margins ``(1.0, 0.5, 0.0)`` for MS1MV3 and CosFace ``(1.0, 0.0, 0.4)`` for Glint360K/WebFace,
scale 64, polynomial decay (power 2) after linear warm-up.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arcface.errors import InputError


@dataclass
class DataConfig:
    """Where the data is and how it is augmented.

    path: ImageFolder root, ``X.rec`` or a folder holding ``train.rec``, of 112x112 aligned crops
        (``arcface data align`` makes them from raw photos).
    list_file: optional ``key<TAB>label`` list restricting/relabelling samples (``arcface clean`` output).
    num_images, num_identities: the published dataset's size (informational, from the preset; the data's own
        counts are used).
    num_workers: DataLoader worker processes; -1 = auto (0 on 2 cores, up to 4 with more).
    resize: accept images that are not 112x112 by squashing them (off: such images are refused).
    flip/color/blur/crop/mask/lowres: augmentation (see :class:`arcface.train.data.Augment`).
    holdout: fraction of each identity's images (with at least 3) kept out of training (seeded); they are
        listed in ``run.output/holdout.tsv`` and used to calibrate the exported model's threshold.
    val_sets: ``.bin`` verification sets evaluated every ``run.val_every`` steps (paths or names in
    ``val_dir``).
    """

    path: str = ""
    list_file: str | None = None
    num_images: int = 0
    num_identities: int = 0
    num_workers: int = -1
    resize: bool = False
    flip: float = 0.5
    color: float = 0.0
    blur: float = 0.0
    crop: float = 0.0
    mask: float = 0.0
    lowres: float = 0.0
    holdout: float = 0.0
    val_sets: tuple[str, ...] = ()
    val_dir: str = ""


@dataclass
class ModelConfig:
    """Backbone: a name of :func:`arcface.nn.create_model` and its embedding length.

    bn: BatchNorm during training: ``batch`` (batch statistics, the usual), ``frozen`` (running statistics
    kept, affine parameters learnt; for fine-tuning on small batches) or ``auto`` (``frozen`` when
    ``run.init_from`` is set, else ``batch``).
    """

    network: str = "iresnet50"
    embedding_size: int = 512
    dropout: float = 0.0
    width: int = 0  # >0: passed as ``width`` to backbones that accept it (tiny test models)
    norm: str = "batch"  # ``tiny`` only: "batch" or "group" normalisation
    bn: str = "auto"


@dataclass
class HeadConfig:
    """Margin-softmax head.

    margin_list: ``(m1, m2, m3)`` of the combined margin ``cos(m1*theta + m2) - m3`` (radians for m2).
    scale: logit scale ``s``.
    num_classes: 0 (the default, also in presets) = the number of classes found in the data.
    sample_rate: Partial FC: fraction of negative class centres sampled per step (1.0 = full softmax).
    subcenters: K sub-centres per class (1 = plain ArcFace; 3 for sub-center ArcFace).
    """

    margin_list: tuple[float, float, float] = (1.0, 0.5, 0.0)
    scale: float = 64.0
    num_classes: int = 0
    sample_rate: float = 1.0
    subcenters: int = 1


@dataclass
class OptimConfig:
    """Optimiser and schedule.

    batch_size is per process (per GPU); the global batch is ``batch_size * world_size * grad_accum``.
    lr follows linear warm-up for ``warmup_epochs`` then polynomial decay ``(1 - t) ** lr_power`` to 0,
    stepped once per optimiser step. ``max_steps > 0`` overrides ``epochs``. ``clip_grad`` is the max
    global L2 norm of the backbone gradients (0 disables). ``amp``: ``none``, ``bf16`` or ``fp16``
    (CUDA only; on CPU the run says so and trains in fp32).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 20
    max_steps: int = 0
    warmup_epochs: float = 0.0
    lr_power: float = 2.0
    grad_accum: int = 1
    clip_grad: float = 5.0
    amp: str = "none"


@dataclass
class RunConfig:
    """Logging, checkpoints, resume, device.

    resume: ``auto`` (latest checkpoint in ``output`` if any), ``none``, or a checkpoint path.
    init_from: a checkpoint (``.pt``), an ONNX recognizer or a pack to initialise the backbone (fine-tuning).
    threads: torch intra-op threads; 0 = auto (the CPU cores not taken by data workers, at least 1).
    """

    output: str = "runs/train"
    seed: int = 2048
    log_every: int = 10
    ckpt_every: int = 1000
    keep_last: int = 3
    val_every: int = 2000
    resume: str = "auto"
    init_from: str = ""
    device: str = "auto"
    threads: int = 0
    progress: bool = True
    tensorboard: bool = True


@dataclass
class TrainConfig:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are errors)."""
        cfg = cls()
        _merge(cfg, d)
        return cfg


def _merge(cfg: TrainConfig, d: dict[str, Any]) -> None:
    for key, value in d.items():
        if key == "name":
            cfg.name = str(value)
        elif key in SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                apply_override(cfg, f"{key}.{k}", v)
        else:
            apply_override(cfg, key, value)


SECTIONS = ("data", "model", "head", "optim", "run")

_VAL = ("lfw", "cfp_fp", "agedb_30")


def _published(
    name: str,
    network: str,
    margin: tuple[float, float, float],
    weight_decay: float,
    num_classes: int,
    num_images: int,
    sample_rate: float = 1.0,
    val: tuple[str, ...] = _VAL,
) -> TrainConfig:
    return TrainConfig(
        name=name,
        data=DataConfig(num_images=num_images, num_identities=num_classes, val_sets=val),
        model=ModelConfig(network=network, embedding_size=512),
        head=HeadConfig(margin_list=margin, scale=64.0, num_classes=0, sample_rate=sample_rate),
        optim=OptimConfig(
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=weight_decay,
            batch_size=128,
            epochs=20,
            warmup_epochs=0.0,
            amp="fp16",
        ),
        run=RunConfig(output=f"runs/{name}", log_every=10, ckpt_every=2000, val_every=2000),
    )


def _tiny_cpu() -> TrainConfig:
    return TrainConfig(
        name="tiny_cpu",
        data=DataConfig(num_workers=0, flip=0.5),
        model=ModelConfig(network="tiny", embedding_size=128),
        head=HeadConfig(margin_list=(1.0, 0.3, 0.0), scale=32.0),
        optim=OptimConfig(
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            batch_size=64,
            epochs=5,
            warmup_epochs=0.5,
            clip_grad=5.0,
        ),
        run=RunConfig(
            output="runs/tiny_cpu", log_every=10, ckpt_every=200, keep_last=2, val_every=0, tensorboard=False
        ),
    )


#: Preset constructors. Numbers from insightface arcface_torch's published configs.
PRESETS: dict[str, typing.Callable[[], TrainConfig]] = {
    "ms1mv3_r50": lambda: _published("ms1mv3_r50", "iresnet50", (1.0, 0.5, 0.0), 5e-4, 93431, 5179510),
    "ms1mv3_r100": lambda: _published("ms1mv3_r100", "iresnet100", (1.0, 0.5, 0.0), 5e-4, 93431, 5179510),
    "glint360k_r100": lambda: _published("glint360k_r100", "iresnet100", (1.0, 0.0, 0.4), 1e-4, 360232, 17091657),
    "webface_mbf": lambda: _published("webface_mbf", "mbf", (1.0, 0.0, 0.4), 1e-4, 617970, 12720066, val=()),
    "wf42m_pfc02_r100": lambda: _published(
        "wf42m_pfc02_r100", "iresnet100", (1.0, 0.0, 0.4), 5e-4, 2059906, 42474557, sample_rate=0.2
    ),
    "tiny_cpu": _tiny_cpu,
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}") from None


def load_config(config_or_preset: str) -> TrainConfig:
    """A preset name, or a ``.json``/``.toml`` file (sections as objects/tables; ``preset`` key = base)."""
    p = Path(config_or_preset)
    if config_or_preset in PRESETS and not p.is_file():
        return get_preset(config_or_preset)
    if not p.is_file():
        raise InputError(f"{config_or_preset!r} is neither a preset ({', '.join(list_presets())}) nor a config file")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot parse config ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{p}: a config must be an object of sections")
    base = get_preset(data.pop("preset")) if "preset" in data else TrainConfig()
    _merge(base, data)
    return base


def _resolve_key(cfg: TrainConfig, key: str) -> tuple[Any, str]:
    key = key.replace("-", "_")
    if "." in key:
        section, leaf = key.split(".", 1)
        if section not in SECTIONS:
            raise InputError(f"unknown config section {section!r} in {key!r}; sections: {', '.join(SECTIONS)}")
        obj = getattr(cfg, section)
        if leaf not in {f.name for f in dataclasses.fields(obj)}:
            raise InputError(f"unknown config key {key!r}")
        return obj, leaf
    owners = [s for s in SECTIONS if key in {f.name for f in dataclasses.fields(getattr(cfg, s))}]
    if not owners:
        raise InputError(f"unknown config key {key!r}")
    if len(owners) > 1:
        raise InputError(f"config key {key!r} is ambiguous: use one of {', '.join(f'{s}.{key}' for s in owners)}")
    return getattr(cfg, owners[0]), key


def _parse(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _parse(value, inner[0], key)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if origin is tuple:
            if isinstance(value, str):
                s = value.strip()
                if s.startswith("["):
                    value = json.loads(s)
                elif s.startswith("("):
                    value = [v for v in s.strip("()").split(",") if v.strip()]
                else:
                    value = [v for v in s.split(",") if v.strip()]
            items = list(value)
            elem = args[0] if args else str
            if len(args) > 1 and args[1] is not Ellipsis:
                if len(items) != len(args):
                    raise ValueError(f"expected {len(args)} values")
                return tuple(_parse(v, a, key) for v, a in zip(items, args, strict=True))
            return tuple(_parse(v.strip() if isinstance(v, str) else v, elem, key) for v in items)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"config key {key!r}: cannot parse {value!r} as {tp} ({exc})") from None
    return value


def apply_override(cfg: TrainConfig, key: str, value: Any) -> None:
    """Set ``section.key`` (or a unique ``key``) to ``value`` parsed to the field's type."""
    obj, leaf = _resolve_key(cfg, key)
    hints = typing.get_type_hints(type(obj))
    setattr(obj, leaf, _parse(value, hints[leaf], key))


def parse_overrides(args: list[str]) -> list[tuple[str, str]]:
    """``["lr=0.2", "--optim.epochs", "3", "--amp=bf16"]`` -> ``[("lr", "0.2"), ("optim.epochs", "3"), ...]``.

    A bare ``--flag`` followed by another option (or nothing) means ``flag=true``.
    """
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            body = a[2:]
            if "=" in body:
                k, v = body.split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                k, v = body, args[i + 1]
                i += 1
            else:
                k, v = body, "true"
        elif "=" in a:
            k, v = a.split("=", 1)
        else:
            raise InputError(f"cannot read override {a!r}: use key=value or --key value")
        out.append((k, v))
        i += 1
    return out


def build_config(config_or_preset: str, overrides: list[str] | None = None) -> TrainConfig:
    """Load a preset or file and apply command-line overrides."""
    cfg = load_config(config_or_preset)
    for k, v in parse_overrides(list(overrides or [])):
        apply_override(cfg, k, v)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Reject values that cannot work, naming the key."""
    o, h = cfg.optim, cfg.head
    if o.optimizer.lower() not in ("sgd", "adamw"):
        raise InputError(f"optim.optimizer must be 'sgd' or 'adamw', got {o.optimizer!r}")
    if o.amp not in ("none", "bf16", "fp16"):
        raise InputError(f"optim.amp must be none, bf16 or fp16, got {o.amp!r}")
    if o.batch_size < 1 or o.grad_accum < 1:
        raise InputError("optim.batch_size and optim.grad_accum must be >= 1")
    if o.lr <= 0:
        raise InputError(f"optim.lr must be > 0, got {o.lr}")
    if not 0 < h.sample_rate <= 1:
        raise InputError(f"head.sample_rate must be in (0, 1], got {h.sample_rate}")
    if h.subcenters < 1:
        raise InputError(f"head.subcenters must be >= 1, got {h.subcenters}")
    if not 0 <= cfg.data.holdout < 1:
        raise InputError(f"data.holdout must be in [0, 1), got {cfg.data.holdout}")
    if cfg.model.bn not in ("auto", "batch", "frozen"):
        raise InputError(f"model.bn must be auto, batch or frozen, got {cfg.model.bn!r}")
    if cfg.run.threads < 0:
        raise InputError(f"run.threads must be >= 0 (0 = auto), got {cfg.run.threads}")
    if cfg.run.resume not in ("auto", "none") and not Path(cfg.run.resume).exists():
        raise InputError(f"run.resume: checkpoint {cfg.run.resume!r} not found")
