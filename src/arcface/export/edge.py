"""Edge formats built on a checked ONNX export: OpenVINO IR and Luxonis NN Archive (DepthAI).

Both start from :func:`arcface.export.onnx.export_onnx` (torch vs ONNX Runtime parity on real aligned
crops), then convert and check again on the same crops:

* :func:`export_openvino`: ``openvino.convert_model`` + ``save_model`` (``model.xml``/``model.bin``, fp32
  weights), compiled on the CPU at f32 precision (``INFERENCE_PRECISION_HINT``: on CPUs with bf16 units
  OpenVINO would otherwise run bf16) and compared with ONNX Runtime; ``config.json`` beside it.
* :func:`export_nnarchive`: a ``.tar.xz`` holding ``config.json`` (Luxonis NN Archive schema, config
  version 1.0) and the ONNX model with a fixed batch of 1. By default the input is ``bgr-uint8``: NCHW uint8
  BGR pixels as a DepthAI camera gives them (``dai_type`` ``BGR888p``), normalisation baked into the graph,
  so the archive's ``mean``/``scale`` are 0 and 1.

The NN Archive ``config.json`` fields written here::

    config_version       "1.0"
    model.metadata       name, path (the model file inside the archive), precision "float32"
    model.inputs[0]      name "input", dtype "uint8" | "float32", input_type "image", shape [1, 3, H, W],
                         layout "NCHW", preprocessing {mean, scale, dai_type}: what the device must apply
                         before the graph (mean/scale per channel in the channel order of dai_type)
    model.outputs[0]     name "embedding", dtype "float32", shape [1, D], layout "NC"
    model.heads          null: the embedding is returned raw (L2-normalise it, compare by cosine)
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError, ModelError, require
from arcface.export.onnx import MIN_COSINE, PARITY_BATCHES, export_onnx, row_cosine
from arcface.io_utils import atomic_write_bytes
from arcface.spec import ModelSpec

NNARCHIVE_CONFIG_VERSION = "1.0"


@dataclass
class EdgeExport:
    """What an edge export wrote and measured.

    Attributes:
        path: the archive (``.tar.xz``) or the OpenVINO ``model.xml``.
        spec: the exported graph's input conventions.
        parity: batch size -> smallest cosine of the converted model against ONNX Runtime (OpenVINO) or
            against torch (NN Archive: the ONNX check of :func:`export_onnx`).
        config: the descriptor written (NN Archive ``config.json`` or the spec's dict).
    """

    path: Path
    spec: ModelSpec
    parity: dict[int, float]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "parity_min_cosine": self.parity, "config": self.config}


def _crops(crops: np.ndarray | None, batch: int) -> np.ndarray:
    if crops is not None:
        return np.asarray(crops)
    from arcface.export.crops import reference_crops

    return reference_crops(batch)


def export_openvino(
    source: Any,
    out_dir: str | os.PathLike,
    *,
    arch: str | None = None,
    input_format: str = "float",
    min_cosine: float = MIN_COSINE,
    crops: np.ndarray | None = None,
) -> EdgeExport:
    """Export ``source`` (any :func:`arcface.export.sources.load_backbone` source) to OpenVINO IR.

    Writes ``out_dir/model.xml``, ``model.bin``, ``model.onnx`` (the checked intermediate) and
    ``config.json``. Refused (nothing kept) when OpenVINO's f32 output differs from ONNX Runtime's by a
    per-face cosine below ``min_cosine``.
    """
    ov = require("openvino", "openvino")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    crops = _crops(crops, max(PARITY_BATCHES))
    res = export_onnx(
        source, out / "model.onnx", arch=arch, input_format=input_format, crops=crops, min_cosine=min_cosine
    )
    model = ov.convert_model(str(res.path))
    xml = out / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    import onnxruntime as ort

    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    parity: dict[int, float] = {}
    for b in PARITY_BATCHES:
        x = res.spec.preprocess(crops[:b])
        ref = sess.run(None, {"input": x})[0]
        got = compiled(x)[compiled.output(0)]
        parity[b] = float(row_cosine(ref, got).min())
    if min(parity.values()) < min_cosine:
        for f in ("model.xml", "model.bin"):
            (out / f).unlink(missing_ok=True)
        raise ModelError(f"OpenVINO conversion changed the embeddings: min cosine {parity} < {min_cosine}")
    spec = res.spec.with_(extra={**res.spec.extra, "openvino": {"xml": xml.name, "version": ov.__version__}})
    (out / "config.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
    return EdgeExport(xml, spec, parity, spec.to_dict())


def nnarchive_config(spec: ModelSpec, model_file: str, name: str, dim: int) -> dict[str, Any]:
    """The NN Archive ``config.json`` of a recognizer with input ``spec`` (see the module docstring)."""
    w, h = spec.input_size or (112, 112)
    if spec.input_dtype == "uint8":
        mean, scale = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    else:
        mean, scale = list(spec.mean), list(spec.std)
    return {
        "config_version": NNARCHIVE_CONFIG_VERSION,
        "model": {
            "metadata": {"name": name, "path": model_file, "precision": "float32"},
            "inputs": [
                {
                    "name": "input",
                    "dtype": spec.input_dtype,
                    "input_type": "image",
                    "shape": [1, 3, h, w],
                    "layout": "NCHW",
                    "preprocessing": {"mean": mean, "scale": scale, "dai_type": f"{spec.color_order}888p"},
                }
            ],
            "outputs": [{"name": "embedding", "dtype": "float32", "shape": [1, dim], "layout": "NC"}],
            "heads": None,
        },
    }


def export_nnarchive(
    source: Any,
    out_path: str | os.PathLike,
    *,
    arch: str | None = None,
    input_format: str = "bgr-uint8",
    min_cosine: float = MIN_COSINE,
    crops: np.ndarray | None = None,
) -> EdgeExport:
    """Export ``source`` as a Luxonis NN Archive ``OUT.tar.xz`` (config.json + ``<name>.onnx``, batch 1)."""
    out = Path(out_path).expanduser()
    if not out.name.endswith(".tar.xz"):
        raise InputError(f"{out}: an NN Archive file name ends in .tar.xz")
    name = out.name[: -len(".tar.xz")] or "arcface"
    crops = _crops(crops, max(PARITY_BATCHES))
    with tempfile.TemporaryDirectory(prefix="nnarchive-") as tmp:
        res = export_onnx(
            source,
            Path(tmp) / f"{name}.onnx",
            arch=arch,
            dynamic_batch=False,
            input_format=input_format,
            crops=crops,
            min_cosine=min_cosine,
        )
        dim = int(res.spec.embedding_dim or 512)
        config = nnarchive_config(res.spec, res.path.name, name, dim)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tar:
            blob = json.dumps(config, indent=2).encode("utf-8")
            info = tarfile.TarInfo("config.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            tar.add(res.path, arcname=res.path.name)
        atomic_write_bytes(out, buf.getvalue())
        return EdgeExport(out, res.spec, dict(res.parity), config)
