"""Export a recognition backbone to ONNX, prove it matches torch, and describe it in ``config.json``.

The exported graph has one input ``"input"``: float32 ``(N, 3, H, W)`` (NCHW; 112x112 for ArcFace models)
holding RGB pixels normalised as ``(pixel - mean) / std`` with pixels in ``[0, 255]`` (mean = std = 127.5 for
ArcFace, so the input lies in ``[-1, 1]``), and one output ``"embedding"``: float32 ``(N, D)``, **not**
L2-normalised (normalise before comparing; similarity is cosine). ``N`` is a dynamic axis unless
``dynamic_batch=False``.

After export the file is checked against the torch module with ONNX Runtime on real aligned crops (see
:mod:`arcface.export.crops`) at batch sizes 1 and 7: the smallest per-face cosine between the two must reach
``min_cosine`` (0.9999) or the export fails and nothing is written. The file is written atomically; beside it
go ``config.json`` and ``<stem>.json`` (the same :class:`~arcface.spec.ModelSpec`, the second is what
:func:`arcface.models.packs.load_pack` picks up for a recognizer ``<stem>.onnx``), so that
``OnnxEmbedder(path, ModelSpec.from_json(config))`` or ``--pack <folder>`` use the model as exported.

``input_format`` ``"bgr-uint8"`` or ``"rgb-uint8"`` bakes the channel order and the normalisation into the
graph instead: the input is then uint8 ``(N, 3, H, W)`` raw pixels in that channel order (DepthAI's "NCHW,
BGR un-normalized" for ``bgr-uint8``), and the parity check feeds it raw bytes and compares with the library's
own float path on the same RGB crops.

The exporter is torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``: the ``dynamo=True`` path
needs the extra ``onnxscript`` package and gains nothing for these plain conv nets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError, ModelError, require
from arcface.export.sources import LoadedBackbone, load_backbone
from arcface.io_utils import atomic_write
from arcface.spec import ARCFACE_RECOGNITION, ModelSpec

torch = require("torch", "train")
log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
PARITY_BATCHES = (1, 7)
#: ``--input`` choices: the normalised float input of the library, or raw uint8 pixels (normalisation baked in).
INPUT_FORMATS = ("float", "bgr-uint8", "rgb-uint8")
MIN_COSINE = 0.9999
#: Known detector file names: a folder holding one of these plus the export becomes a model pack.


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the ``.onnx`` file.
        config_path: its ``config.json``.
        spec: the spec written there (``ModelSpec.from_json(config_path)`` gives it back).
        sha256: SHA-256 of the ``.onnx`` file.
        arch: architecture name.
        parity: batch size -> smallest cosine between torch and ONNX Runtime embeddings of the same crops.
        source_parity: batch size -> smallest cosine between the source ONNX file and the export (ONNX sources).
        real_crops: whether the parity crops were real faces (False: random pixels).
        pack_json: the ``pack.json`` written when a detector sits beside the export, else None.
        threshold: the thresholds entry calibrated on the training run's held-out images and written to
            ``thresholds.json`` beside the export (training checkpoints with ``data.holdout``), else None.
    """

    path: Path
    config_path: Path
    spec: ModelSpec
    sha256: str
    arch: str
    parity: dict[int, float] = field(default_factory=dict)
    source_parity: dict[int, float] = field(default_factory=dict)
    real_crops: bool = True
    pack_json: Path | None = None
    threshold: dict[str, Any] | None = None

    @property
    def min_cosine(self) -> float:
        vals = list(self.parity.values()) + list(self.source_parity.values())
        return min(vals) if vals else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "config": str(self.config_path),
            "sha256": self.sha256,
            "arch": self.arch,
            "parity_min_cosine": {str(k): v for k, v in self.parity.items()},
            "source_min_cosine": {str(k): v for k, v in self.source_parity.items()},
            "real_crops": self.real_crops,
            "pack_json": str(self.pack_json) if self.pack_json else None,
            "threshold": self.threshold,
        }


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of corresponding rows of ``a`` and ``b`` (both ``(N, D)``) -> ``(N,)`` float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, 1e-30)


def _ort_session(path: Path):
    """A private (uncached) ONNX Runtime session: the file may be replaced later under the same name."""
    from arcface.runtime import private_session

    return private_session(path)


def _torch_raw(model: Any, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).float().numpy()


class BakedInput(torch.nn.Module):
    """``model`` behind its own preprocessing: uint8 ``(N, 3, H, W)`` pixels in ``order`` -> embeddings.

    The module converts to float, reorders channels to the model's (``spec.color_order``) and applies
    ``(pixel - mean) / std``, so a device can feed camera bytes as they are.
    """

    def __init__(self, model: Any, spec: ModelSpec, order: str) -> None:
        super().__init__()
        self.model = model
        self.swap = order.upper() != spec.color_order
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", (1.0 / torch.tensor(spec.std, dtype=torch.float32)).view(1, 3, 1, 1))

    def forward(self, x: Any) -> Any:
        x = x.float()
        if self.swap:
            x = x.flip(1)
        return self.model((x - self.mean) * self.inv_std)


def baked_spec(base: ModelSpec, input_format: str) -> ModelSpec:
    """The spec of a graph with ``input_format`` baked in (uint8 pixels, normalisation recorded in extra)."""
    order = input_format.split("-")[0].upper()
    return base.with_(
        color_order=order,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        input_dtype="uint8",
        extra={
            **base.extra,
            "baked": {
                "input_format": input_format,
                "model_color_order": base.color_order,
                "mean": list(base.mean),
                "std": list(base.std),
                "note": f"the graph converts uint8 {order} pixels to the model's {base.color_order} order and "
                "applies (pixel - mean) / std itself",
            },
        },
    )


def parity_check(
    model: Any,
    onnx_path: str | os.PathLike,
    crops_rgb: np.ndarray,
    spec: ModelSpec = ARCFACE_RECOGNITION,
    batch_sizes: tuple[int, ...] = PARITY_BATCHES,
    onnx_spec: ModelSpec | None = None,
) -> dict[int, float]:
    """Smallest per-face cosine between torch and ONNX Runtime raw embeddings, per batch size.

    Args:
        model: the torch module (eval mode).
        onnx_path: its export (input ``"input"`` or the graph's first input).
        crops_rgb: uint8 ``(N, H, W, 3)`` RGB aligned crops, ``N >= max(batch_sizes)``.
        spec: the torch model's preprocessing (pixels ``[0, 255]`` -> ``(pixel - mean) / std``).
        onnx_spec: the ONNX graph's, when it differs (a baked uint8 input); default ``spec``.
    """
    sess = _ort_session(Path(onnx_path))
    name = sess.get_inputs()[0].name
    out: dict[int, float] = {}
    for b in batch_sizes:
        if len(crops_rgb) < b:
            raise InputError(f"parity check at batch {b} needs {b} crops, got {len(crops_rgb)}")
        ref = _torch_raw(model, spec.preprocess(crops_rgb[:b]))
        got = sess.run(None, {name: (onnx_spec or spec).preprocess(crops_rgb[:b])})[0]
        if got.shape != ref.shape:
            raise ModelError(f"{onnx_path}: ONNX output shape {got.shape} differs from torch {ref.shape}")
        out[b] = float(row_cosine(ref, got).min())
    return out


def onnx_vs_onnx(
    path_a: str | os.PathLike,
    spec_a: ModelSpec,
    path_b: str | os.PathLike,
    spec_b: ModelSpec,
    crops_rgb: np.ndarray,
    batch_sizes: tuple[int, ...] = PARITY_BATCHES,
) -> dict[int, float]:
    """Smallest per-face cosine between two ONNX recognizers (each with its own spec) per batch size.

    A model whose batch axis is fixed to 1 is run one crop at a time.
    """
    out: dict[int, float] = {}
    sessions = [(_ort_session(Path(p)), s) for p, s in ((path_a, spec_a), (path_b, spec_b))]
    for b in batch_sizes:
        embs = []
        for sess, spec in sessions:
            inp = sess.get_inputs()[0]
            name = spec.input_name or inp.name
            x = spec.preprocess(crops_rgb[:b])
            if isinstance(inp.shape[0], int):
                embs.append(np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(b)]))
            else:
                embs.append(sess.run(None, {name: x})[0])
        out[b] = float(row_cosine(embs[0], embs[1]).min())
    return out


def _config_spec(
    base: ModelSpec, loaded: LoadedBackbone, dim: int, opset: int, dynamic: bool, file_name: str, sha: str
) -> ModelSpec:
    w, h = base.input_size or (112, 112)
    batch: Any = "N" if dynamic else 1
    mean, std = base.mean, base.std
    lo = [(0.0 - m) / s for m, s in zip(mean, std)]
    hi = [(255.0 - m) / s for m, s in zip(mean, std)]
    pixel_note = (
        f"feed {base.color_order} pixels in [0, 255] (uint8 range, not [0, 1]; "
        f"{'not BGR' if base.color_order == 'RGB' else 'not RGB'}), normalised per channel as "
        f"(pixel - mean) / std with mean {list(mean)} and std {list(std)} in pixel units, "
        f"so the input spans [{min(lo):.4g}, {max(hi):.4g}]; layout NCHW float32"
    )
    if base.input_dtype == "uint8":
        baked = base.extra.get("baked", {})
        pixel_note = (
            f"feed raw {base.color_order} pixels as uint8 (0..255), layout NCHW, no normalisation: the graph "
            f"converts them to {baked.get('model_color_order')} and applies (pixel - mean) / std with mean "
            f"{baked.get('mean')} and std {baked.get('std')} itself"
        )
    extra = {
        **{k: v for k, v in base.extra.items() if k not in ("input", "output")},
        "arch": loaded.arch,
        "source": loaded.source,
        "onnx_file": file_name,
        "sha256": sha,
        "opset": opset,
        "dynamic_batch": dynamic,
        "exporter": f"torch.onnx.export (TorchScript), torch {torch.__version__}",
        "pixel_range": pixel_note,
        "input": {
            "name": INPUT_NAME,
            "shape": [batch, 3, h, w],
            "dtype": base.input_dtype,
            "layout": "NCHW",
            "color_order": base.color_order,
            "mean": list(mean),
            "std": list(std),
            "value_range": [min(lo), max(hi)],
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [batch, dim],
            "dtype": "float32",
            "l2_normalized": False,
            "similarity": "cosine (L2-normalise each embedding first)",
        },
    }
    return base.with_(
        task="recognition",
        input_name=INPUT_NAME,
        output_names=(OUTPUT_NAME,),
        layout="NCHW",
        embedding_dim=dim,
        extra=extra,
    )


def write_config(spec: ModelSpec, path: str | os.PathLike) -> Path:
    """Write ``spec`` as JSON (the :meth:`ModelSpec.to_dict` form of ``config.json``), atomically."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write(json.dumps(spec.to_dict(), indent=2) + "\n")
    return path


def _find_detector(directory: Path) -> Path | None:
    """A registered detector file already in ``directory``."""
    from arcface.models.cards import registered_files

    return next((directory / n for n in registered_files("detector") if (directory / n).is_file()), None)


def write_pack_json(directory: Path, recognizer: Path, spec: ModelSpec, detector: Path) -> Path:
    """``pack.json`` naming ``detector`` and ``recognizer`` (both inside ``directory``) for ``load_pack(dir)``."""
    from arcface.models import PackFile, card_for_file

    card = card_for_file(detector.name)
    return PackFile(
        detector=detector.name,
        recognizer=recognizer.name,
        detector_family=card.family if card is not None else "scrfd",
        detector_spec=card.spec if card is not None else None,
        recognizer_spec=spec,
        name=directory.name,
    ).write(directory)


def _torch_export(
    model: Any, path: Path, size_hw: tuple[int, int], opset: int, dynamic: bool, dtype: Any = None
) -> None:
    dummy = torch.zeros(2 if dynamic else 1, 3, *size_hw, dtype=dtype or torch.float32)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic else None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # torch raises many types while tracing
        raise ModelError(f"torch.onnx.export failed at opset {opset}: {type(exc).__name__}: {exc}") from exc


def _calibrate_export(run_dir: Path, out: Path, spec: ModelSpec, sha: str) -> dict[str, Any] | None:
    """Threshold of the exported file on the run's held-out images, written to ``thresholds.json`` beside it."""
    from arcface.embed.onnx import OnnxEmbedder
    from arcface.eval.calibration import write_threshold
    from arcface.thresholds import REFERENCE_ENGINE
    from arcface.train.holdout import calibrate_holdout

    embedder = OnnxEmbedder(out, spec)
    entry = calibrate_holdout(run_dir, embedder.embed)
    if entry is None:
        return None
    entry["model"] = out.name
    entry["model_sha256"] = sha
    entry["engine"] = REFERENCE_ENGINE  # embedded by ONNX Runtime f32 above
    write_threshold(out.with_name("thresholds.json"), sha, entry, engine=REFERENCE_ENGINE)
    return entry


def export_onnx(
    model_or_checkpoint: Any,
    out_path: str | os.PathLike,
    arch: str | None = None,
    opset: int = 17,
    dynamic_batch: bool = True,
    spec: ModelSpec | None = None,
    *,
    min_cosine: float = MIN_COSINE,
    crops: np.ndarray | None = None,
    detector: str | os.PathLike | None = None,
    input_format: str = "float",
) -> ExportResult:
    """Export a recognition backbone to ONNX with a parity check and a ``config.json``.

    Args:
        model_or_checkpoint: an ``nn.Module``, a training checkpoint (folder or ``rank0.pt``), an arcface_torch
            ``backbone.pth`` (with ``arch``), an ONNX recognizer or a pack name (see
            :func:`arcface.export.sources.load_backbone`).
        out_path: the ``.onnx`` file to write (its folder is created).
        arch: registered backbone name (required for bare state dicts).
        opset: ONNX opset (default 17).
        dynamic_batch: make the batch axis dynamic (else fixed to 1).
        spec: the model's input conventions; default the source's own (pack or sibling JSON) or
            :data:`~arcface.spec.ARCFACE_RECOGNITION` (RGB, ``(pixel - 127.5) / 127.5``, 112x112).
        min_cosine: smallest per-face cosine torch vs ONNX Runtime (and source ONNX vs export) accepted.
        crops: uint8 ``(N >= 7, H, W, 3)`` RGB aligned crops for the check; default real crops from the
            default pack's photos (:func:`arcface.export.crops.reference_crops`).
        detector: a detector ``.onnx`` to copy beside the export, making its folder a model pack
            (``pack.json``); a known detector already in the folder is used without this.
        input_format: ``"float"`` (normalised float32 in the spec's colour order), or ``"bgr-uint8"`` /
            ``"rgb-uint8"`` (raw uint8 pixels in that order; the normalisation is baked into the graph).
    Returns:
        :class:`ExportResult` (paths, digest, parity figures).
    Raises:
        InputError: bad source or arguments; ModelError: export failed or parity below ``min_cosine``
        (nothing is written then).
    """
    from arcface.models.packs import sha256_file

    out = Path(out_path).expanduser()
    if out.suffix.lower() != ".onnx":
        raise InputError(f"{out}: the output file must end in .onnx")
    if not 7 <= opset <= 23:
        raise InputError(f"opset must be in [7, 23], got {opset}")
    if input_format not in INPUT_FORMATS:
        raise InputError(f"input format must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
    loaded = load_backbone(model_or_checkpoint, arch)
    base = spec or loaded.spec or ARCFACE_RECOGNITION
    if base.task != "recognition" or base.layout != "NCHW":
        raise InputError(f"export needs an NCHW recognition spec, got task={base.task!r} layout={base.layout!r}")
    w, h = base.input_size or (112, 112)
    if crops is None:
        from arcface.export.crops import reference_crops, wheel_photo_paths

        crops = reference_crops(max(PARITY_BATCHES))
        real = bool(wheel_photo_paths())
    else:
        crops = np.asarray(crops)
        real = True
    if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8:
        raise InputError(f"parity crops must be uint8 (N, {h}, {w}, 3) RGB, got {crops.dtype} {crops.shape}")
    batches = PARITY_BATCHES if dynamic_batch else (1,)
    dim = int(_torch_raw(loaded.model, base.preprocess(crops[:1])).shape[1])

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".onnx.tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    graph_spec = base if input_format == "float" else baked_spec(base, input_format)
    graph = loaded.model if input_format == "float" else BakedInput(loaded.model, base, graph_spec.color_order)
    try:
        dtype = torch.uint8 if input_format != "float" else None
        _torch_export(graph.eval(), tmp, (h, w), opset, dynamic_batch, dtype)
        parity = parity_check(loaded.model, tmp, crops, base, batches, onnx_spec=graph_spec)
        bad = {b: c for b, c in parity.items() if not c >= min_cosine}
        if bad:
            raise ModelError(f"ONNX export of {loaded.source} disagrees with torch: min cosine {bad} < {min_cosine}")
        source_parity: dict[int, float] = {}
        if loaded.onnx_path is not None:
            src_spec = loaded.spec or base
            source_parity = onnx_vs_onnx(
                loaded.onnx_path, src_spec, tmp, graph_spec.with_(input_name=None), crops, batches
            )
            bad = {b: c for b, c in source_parity.items() if not c >= min_cosine}
            if bad:
                raise ModelError(
                    f"round trip {loaded.onnx_path} -> torch -> ONNX changed the embeddings: min cosine {bad}"
                    f" < {min_cosine}"
                )
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

    sha = sha256_file(out)
    final_spec = _config_spec(graph_spec, loaded, dim, opset, dynamic_batch, out.name, sha)
    config_path = write_config(final_spec, out.with_name("config.json"))
    if out.stem != "config":
        write_config(final_spec, out.with_name(out.stem + ".json"))
    pack_json = None
    det = Path(detector).expanduser() if detector is not None else _find_detector(out.parent)
    if det is not None:
        if not det.is_file():
            raise InputError(f"{det}: detector file not found")
        if det.parent.resolve() != out.parent.resolve():
            target = out.parent / det.name
            shutil.copyfile(det, target)
            det = target
        pack_json = write_pack_json(out.parent, out, final_spec, det)
    threshold = None
    if loaded.run_dir is not None:
        threshold = _calibrate_export(loaded.run_dir, out, final_spec, sha)
    result = ExportResult(
        out, config_path, final_spec, sha, loaded.arch, parity, source_parity, real, pack_json, threshold
    )
    log.info("exported %s (%s): %s", out, loaded.arch, result.to_dict())
    return result
