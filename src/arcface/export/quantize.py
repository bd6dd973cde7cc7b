"""int8 quantization of an ONNX recognizer with ONNX Runtime's quantization tools.

Two methods:

* ``static`` (default): QDQ format, int8 weights per output channel, uint8 activations whose ranges are
  calibrated (min/max) on real aligned face crops fed through the model's own preprocessing (RGB pixels in
  ``[0, 255]`` -> ``(pixel - mean) / std``, NCHW float32). The graph is first pre-processed
  (shape inference + ONNX Runtime graph optimisation, which folds BatchNorms into convolutions).
* ``dynamic``: weights quantized ahead of time, activations quantized per batch at run time (no calibration
  data; ``ConvInteger`` / ``MatMulInteger``). Simpler, usually slower for conv nets on CPU.

The quantized model keeps the fp32 model's input/output names and conventions; a ``<stem>.json`` (and
``config.json``) spec is written beside it with the new SHA-256 and the quantization settings.
Accuracy and speed against the fp32 model are measured by :mod:`arcface.export.compare`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from arcface.errors import InputError, ModelError
from arcface.spec import ARCFACE_RECOGNITION, ModelSpec

log = logging.getLogger(__name__)

Method = Literal["static", "dynamic"]
CALIB_BATCH = 8
#: Per-channel QDQ (``DequantizeLinear`` with ``axis``) needs opset 13.
MIN_OPSET = 13


@dataclass
class QuantizeResult:
    """What :func:`quantize_onnx` wrote.

    Attributes:
        path: the int8 ``.onnx`` file; config_path: its JSON spec; spec: that spec.
        sha256: digest of ``path``; method: ``static`` or ``dynamic``; n_calib: calibration crops used.
        size_fp32, size_int8: file sizes in bytes.
    """

    path: Path
    config_path: Path | None
    spec: ModelSpec
    sha256: str
    method: str
    n_calib: int
    size_fp32: int
    size_int8: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "config": str(self.config_path) if self.config_path else None,
            "sha256": self.sha256,
            "method": self.method,
            "n_calib": self.n_calib,
            "size_fp32_mb": round(self.size_fp32 / 2**20, 3),
            "size_int8_mb": round(self.size_int8 / 2**20, 3),
        }


def spec_for(path: str | os.PathLike) -> ModelSpec:
    """The spec of an ONNX recognizer: its ``<stem>.json``, else ``config.json`` beside it if that describes
    this file, else the ArcFace default (RGB, ``(pixel - 127.5) / 127.5``)."""
    p = Path(path)
    own = ModelSpec.beside(p)
    if own is not None:
        return own
    shared = p.with_name("config.json")
    if shared.is_file():
        spec = ModelSpec.from_json(shared)
        if spec.extra.get("onnx_file") in (None, p.name):
            return spec
    return ARCFACE_RECOGNITION


def default_calibration_crops(limit: int = 64) -> np.ndarray:
    """Real aligned crops for calibration: the faces in the default pack's sample photos.
    uint8 ``(N, 112, 112, 3)`` RGB. Pass ``calib=`` (a folder of your own photos) for a better calibration."""
    from arcface.export.crops import crops_from_images, wheel_photo_paths

    crops = crops_from_images(wheel_photo_paths(), limit=limit)
    if len(crops) == 0:
        raise InputError("no calibration faces found (default pack photos missing); pass a folder with --calib")
    return crops


class CropCalibrationReader:
    """An ONNX Runtime ``CalibrationDataReader`` over aligned crops (batches of the model's input tensor)."""

    def __init__(self, crops_rgb: np.ndarray, spec: ModelSpec, input_name: str, batch: int) -> None:
        self.crops, self.spec, self.input_name, self.batch = crops_rgb, spec, input_name, batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for s in range(0, len(self.crops), self.batch):
            yield {self.input_name: self.spec.preprocess(self.crops[s : s + self.batch])}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def _model_io(path: Path) -> tuple[str, bool]:
    """First input's name and whether its batch axis is symbolic (see :func:`_upgrade` for the output's)."""
    from arcface.export.onnx import _ort_session

    inp = _ort_session(path).get_inputs()[0]
    return inp.name, not isinstance(inp.shape[0], int)


def _float_nodes(path: Path) -> list[str]:
    """Nodes that static int8 hurts most in face recognizers, kept in float: the first convolution (its
    full-range input and large folded weights saturate the 16-bit intermediate sums of ONNX Runtime's
    u8s8 kernels on AVX2 CPUs without VNNI) and depthwise convolutions (``group > 1``: BatchNorm folding
    gives their single-channel filters very different ranges). On buffalo_sc's MobileFaceNet this takes
    the fp32/int8 embedding cosine on real faces from ~0.79 to ~0.99 (mean) at the cost of 17 of 49 convs.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    keep = [convs[0].name] if convs else []
    for n in convs[1:]:
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if group > 1:
            keep.append(n.name)
    return [k for k in keep if k]


def _upgrade(src: Path, dst: Path) -> Path:
    """``src`` converted to opset >= :data:`MIN_OPSET` (per-channel QDQ needs the ``axis`` attribute of
    opset 13), with the output batch axis made symbolic when the input's is; ``src`` itself if nothing changes.

    Older insightface exports (``w600k_mbf.onnx``: opset 11, output declared ``(1, 512)`` for a dynamic
    input batch) need both.
    """
    import onnx
    from onnx import version_converter

    try:
        model = onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{src}: not a readable ONNX model ({exc})") from exc
    changed = False
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if opset < MIN_OPSET:
        try:
            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:
            raise ModelError(f"{src}: cannot convert opset {opset} to {MIN_OPSET} for quantization ({exc})") from exc
        changed = True
    in_dim = model.graph.input[0].type.tensor_type.shape.dim
    if in_dim and in_dim[0].dim_param:
        for o in model.graph.output:
            dims = o.type.tensor_type.shape.dim
            if dims and dims[0].HasField("dim_value"):
                dims[0].dim_param = in_dim[0].dim_param
                changed = True
    if not changed:
        return src
    onnx.save(model, str(dst))
    return dst


def quantize_onnx(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calib: str | os.PathLike | np.ndarray | None = None,
    method: Method = "static",
    spec: ModelSpec | None = None,
    per_channel: bool = True,
    n_calib: int = 64,
    keep_sensitive: bool = True,
) -> QuantizeResult:
    """Quantize an fp32 ONNX recognizer to int8.

    Args:
        in_path: the fp32 ``.onnx`` recognizer.
        out_path: the int8 ``.onnx`` to write (atomically; its folder is created).
        calib: calibration faces for ``static``: a folder of photos (faces are detected and aligned; 112x112
            images are taken as aligned crops) or a uint8 ``(N, H, W, 3)`` RGB array; default
            :func:`default_calibration_crops`. Ignored for ``dynamic``.
        method: ``static`` (QDQ, calibrated) or ``dynamic``.
        spec: input conventions; default :func:`spec_for` ``(in_path)``.
        per_channel: per-output-channel weight scales (static).
        n_calib: at most this many calibration crops.
        keep_sensitive: (static) keep the first convolution and the depthwise convolutions in float (see
            :func:`_float_nodes`); False quantizes every supported node.
    Raises:
        InputError: missing input, bad arguments or no calibration face; ModelError: quantization failed.
    """
    from arcface.errors import require

    require("onnx", "train")  # onnxruntime.quantization reads and writes graphs with the onnx package
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    from arcface.export.onnx import write_config
    from arcface.io_utils import atomic_write
    from arcface.models.packs import sha256_file

    src, out = Path(in_path).expanduser(), Path(out_path).expanduser()
    if not src.is_file():
        raise InputError(f"{src}: ONNX model file not found")
    if out.suffix.lower() != ".onnx":
        raise InputError(f"{out}: the output file must end in .onnx")
    if out.resolve() == src.resolve():
        raise InputError(f"{out}: choose an output different from the input")
    if method not in ("static", "dynamic"):
        raise InputError(f"method must be 'static' or 'dynamic', got {method!r}")
    spec = spec or spec_for(src)
    input_name, dynamic = _model_io(src)
    input_name = spec.input_name or input_name

    crops = None
    if method == "static":
        if calib is None:
            crops = default_calibration_crops(n_calib)
        elif isinstance(calib, np.ndarray):
            crops = calib[:n_calib]
        else:
            from arcface.export.crops import crops_from_dir

            crops = crops_from_dir(calib, limit=n_calib)
        w, h = spec.input_size or (112, 112)
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8 or len(crops) == 0:
            raise InputError(f"calibration crops must be uint8 (N>0, {h}, {w}, 3) RGB, got {crops.dtype} {crops.shape}")

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quant-", dir=out.parent) as td:
        pre, q = Path(td) / "pre.onnx", Path(td) / "int8.onnx"
        base = _upgrade(src, Path(td) / "opset.onnx")
        try:
            quant_pre_process(str(base), str(pre), skip_symbolic_shape=True)
        except Exception as exc:  # pre-processing is an optimisation: quantize the original instead
            log.warning("quant_pre_process failed (%s); quantizing the graph as it is", exc)
            pre = base
        try:
            if method == "static":
                reader = CropCalibrationReader(crops, spec, input_name, CALIB_BATCH if dynamic else 1)
                kept = _float_nodes(pre) if keep_sensitive else []
                quantize_static(
                    str(pre),
                    str(q),
                    reader,
                    nodes_to_exclude=kept,
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                )
            else:
                quantize_dynamic(str(pre), str(q), weight_type=QuantType.QUInt8, per_channel=per_channel)
        except InputError:
            raise
        except Exception as exc:  # onnxruntime.quantization raises assorted types
            raise ModelError(f"{src}: {method} int8 quantization failed ({type(exc).__name__}: {exc})") from exc
        with atomic_write(out) as f, open(q, "rb") as g:
            for chunk in iter(lambda: g.read(1 << 20), b""):
                f.write(chunk)
        with contextlib.suppress(OSError):
            os.unlink(q)

    sha = sha256_file(out)
    quant_info = {
        "method": method,
        "format": "QDQ" if method == "static" else "dynamic (integer ops)",
        "weights": "int8 per channel" if per_channel else "int8 per tensor",
        "activations": "uint8, min/max calibrated" if method == "static" else "uint8, per batch at run time",
        "calibration_crops": int(len(crops)) if crops is not None else 0,
        "kept_float": "first conv + depthwise convs" if method == "static" and keep_sensitive else "none",
        "fp32_sha256": sha256_file(src),
    }
    new_spec = spec.with_(
        input_name=spec.input_name,
        extra={**spec.extra, "onnx_file": out.name, "sha256": sha, "quantization": quant_info},
    )
    config_path = write_config(new_spec, out.with_name(out.stem + ".json"))
    shared_cfg = out.with_name("config.json")
    if not shared_cfg.exists():
        write_config(new_spec, shared_cfg)
    return QuantizeResult(
        out,
        config_path,
        new_spec,
        sha,
        method,
        int(len(crops)) if crops is not None else 0,
        src.stat().st_size,
        out.stat().st_size,
    )
