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

:func:`export_detector_nnarchive` archives a pack's SCRFD detector the same way: the ONNX graph with its input
fixed to ``[1, 3, S, S]`` (float32 RGB, ``(pixel - 127.5) / 128``: ``mean`` 127.5, ``scale`` 128,
``dai_type`` ``RGB888p``), every output listed with its shape, and one head (parser ``SCRFDParser``) whose
metadata describes the layout: per stride 8, 16, 32 a score map ``[1, (S/stride)^2 * 2, 1]`` (after sigmoid),
a box map ``[1, ..., 4]`` (distances left, top, right, bottom from the anchor centre, in strides) and a keypoint
map ``[1, ..., 10]`` (5 points as x, y offsets from the anchor centre, in strides); anchor centres
``(x * stride, y * stride)`` row-major, each repeated for the 2 anchors.
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
from arcface.export.onnx import MIN_COSINE, PARITY_BATCHES, export_onnx, row_cosine, write_config
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
            against torch (NN Archive: the ONNX check of :func:`export_onnx`); empty for a detector.
        max_difference: detector archives: the largest output difference from the original graph.
        config: the descriptor written (NN Archive ``config.json`` or the spec's dict).
    """

    path: Path
    spec: ModelSpec
    parity: dict[int, float]
    config: dict[str, Any] = field(default_factory=dict)
    max_difference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"path": str(self.path), "parity_min_cosine": self.parity, "config": self.config}
        if self.max_difference is not None:
            d["max_output_difference"] = self.max_difference
        return d


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
    from arcface.runtime import OpenVinoSession, default_threads, private_session

    converted = OpenVinoSession(xml, default_threads(), "f32", disk_cache=False)  # a one-off check: nothing to keep
    sess = private_session(res.path)
    parity: dict[int, float] = {}
    for b in PARITY_BATCHES:
        x = res.spec.preprocess(crops[:b])
        ref = sess.run(None, {"input": x})[0]
        got = converted.run(None, {converted.get_inputs()[0].name: x})[0]
        parity[b] = float(row_cosine(ref, got).min())
    if min(parity.values()) < min_cosine:
        for f in ("model.xml", "model.bin"):
            (out / f).unlink(missing_ok=True)
        raise ModelError(f"OpenVINO conversion changed the embeddings: min cosine {parity} < {min_cosine}")
    spec = res.spec.with_(extra={**res.spec.extra, "openvino": {"xml": xml.name, "version": ov.__version__}})
    write_config(spec, out / "config.json")
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
        write_archive(out, config, res.path.name, res.path.read_bytes())
        return EdgeExport(out, res.spec, dict(res.parity), config)


def write_archive(out: Path, config: dict[str, Any], model_name: str, model: bytes) -> Path:
    """An NN Archive: ``config.json`` and the model file, in a ``.tar.xz`` written atomically."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for arcname, data in (("config.json", json.dumps(config, indent=2).encode("utf-8")), (model_name, model)):
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return atomic_write_bytes(out, buf.getvalue())


def export_detector_nnarchive(
    pack: Any, out_path: str | os.PathLike, *, input_size: int = 640, crops_from: np.ndarray | None = None
) -> EdgeExport:
    """Archive the SCRFD detector of ``pack`` (a pack name, folder or :class:`~arcface.models.packs.Pack`).

    The archived graph is the pack's file with its input fixed to ``[1, 3, input_size, input_size]``; it is
    checked against the original on a letterboxed real photo (outputs equal to 1e-5).
    """
    onnx = require("onnx", "train")
    from arcface.detect.scrfd import _LAYOUTS, letterbox
    from arcface.models import resolve_pack

    pk = resolve_pack(pack) if not hasattr(pack, "detector") else pack
    if pk.detector_family != "scrfd":
        raise InputError(f"pack {pk.name}: only SCRFD detectors can be archived (this one is {pk.detector_family})")
    if input_size <= 0 or input_size % 32:
        raise InputError(f"input size must be a positive multiple of 32, got {input_size}")
    out = Path(out_path).expanduser()
    if not out.name.endswith(".tar.xz"):
        raise InputError(f"{out}: an NN Archive file name ends in .tar.xz")
    model = onnx.load(str(pk.detector))
    outputs = list(model.graph.output)
    if len(outputs) not in _LAYOUTS:
        raise ModelError(f"{pk.detector}: {len(outputs)} outputs is not an SCRFD layout")
    strides, anchors, has_kps = _LAYOUTS[len(outputs)]
    inp = model.graph.input[0]
    for d, v in zip(inp.type.tensor_type.shape.dim, (1, 3, input_size, input_size), strict=True):
        d.Clear()
        d.dim_value = v
    channels = [1] * len(strides) + [4] * len(strides) + ([10] * len(strides) if has_kps else [])
    shapes = []
    for o, stride, c in zip(outputs, list(strides) * 3, channels):
        shape = [1, (input_size // stride) ** 2 * anchors, c]
        dims = o.type.tensor_type.shape.dim
        while len(dims):
            dims.pop()
        for v in shape:
            dims.add().dim_value = v
        shapes.append(shape)
    name = out.name[: -len(".tar.xz")] or "scrfd"
    blob = model.SerializeToString()
    # parity: the fixed graph gives the original's outputs on a real letterboxed photo
    from arcface.export.crops import wheel_photo_paths
    from arcface.imageio import load_image

    photos = wheel_photo_paths()
    image = load_image(photos[0]) if photos else np.full((480, 640, 3), 127, np.uint8)
    canvas, _ = letterbox(image, (input_size, input_size))
    x = pk.detector_spec.preprocess(canvas[None])
    from arcface.runtime import private_session

    fixed = private_session(blob)
    orig = private_session(pk.detector)
    a = fixed.run(None, {inp.name: x})
    b = orig.run(None, {inp.name: x})
    worst = max(float(np.abs(np.reshape(u, -1) - np.reshape(v, -1)).max()) for u, v in zip(a, b, strict=True))
    if worst > 1e-5:
        raise ModelError(f"fixing the input size changed the detector's outputs (max difference {worst})")
    spec = pk.detector_spec
    names = [o.name for o in outputs]
    k = len(strides)
    config = {
        "config_version": NNARCHIVE_CONFIG_VERSION,
        "model": {
            "metadata": {"name": name, "path": f"{name}.onnx", "precision": "float32"},
            "inputs": [
                {
                    "name": inp.name,
                    "dtype": "float32",
                    "input_type": "image",
                    "shape": [1, 3, input_size, input_size],
                    "layout": "NCHW",
                    "preprocessing": {
                        "mean": list(spec.mean),
                        "scale": list(spec.std),
                        "dai_type": f"{spec.color_order}888p",
                        "resize_mode": "LETTERBOX",
                    },
                }
            ],
            "outputs": [
                {"name": n, "dtype": "float32", "shape": sh, "layout": "NCD"}
                for n, sh in zip(names, shapes, strict=True)
            ],
            "heads": [
                {
                    "name": "faces",
                    "parser": "SCRFDParser",
                    "outputs": names,
                    "metadata": {
                        "family": "scrfd",
                        "feat_stride_fpn": list(strides),
                        "num_anchors": anchors,
                        "score_outputs": names[:k],
                        "bbox_outputs": names[k : 2 * k],
                        "kps_outputs": names[2 * k :] if has_kps else [],
                        "n_keypoints": 5 if has_kps else 0,
                        "keypoints": "left eye, right eye, nose, left mouth corner, right mouth corner",
                        "conf_threshold": 0.5,
                        "iou_threshold": 0.4,
                        "max_det": 100,
                        "letterbox": "image scaled to fit, pasted at the top-left of a zero canvas",
                    },
                }
            ],
        },
    }
    write_archive(out, config, f"{name}.onnx", blob)
    return EdgeExport(out, spec, {}, config, max_difference=worst)
