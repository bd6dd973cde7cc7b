"""The ``int8`` precision: the recognizer quantized once per model file, cached, run by ONNX Runtime.

ONNX Runtime has no bf16 route on x86, but it runs int8 graphs (``QLinearConv``/``MatMulInteger``, VNNI/AMX where
the CPU has them). ``precision="int8"`` quantizes the *recognizer* with :func:`arcface.export.quantize.quantize_onnx`
(static, QDQ, calibrated on the default pack's sample faces, first and depthwise convolutions kept in float) the
first time it is asked for, and keeps the result in ``$ARCFACE_CACHE_DIR/int8/`` under the fp32 file's SHA-256, so a
changed model is quantized again and never mixed up. The detector stays in f32: its landmarks decide the alignment.
Quantizing needs the ``onnx`` package (in the ``train`` and ``dev`` extras).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from arcface.errors import ModelError

#: Roles whose model is quantized under ``precision="int8"`` (the others run in f32).
INT8_ROLES = ("recognizer",)


def int8_available() -> bool:
    """Whether models can be quantized here (the ``onnx`` package is installed; it is not imported)."""
    return importlib.util.find_spec("onnx") is not None


def int8_cache_dir() -> Path:
    from arcface.runtime.choice import engine_cache_path

    return engine_cache_path().parent / "int8"


def int8_model(path: str | os.PathLike) -> Path:
    """The int8 copy of the fp32 ONNX recognizer ``path`` (made on first use, then read from the cache)."""
    from arcface.io_utils import sha256_file

    src = Path(path)
    if not int8_available():
        raise ModelError("precision int8 quantizes the recognizer with the onnx package: pip install onnx")
    digest = sha256_file(src)
    out = int8_cache_dir() / f"{digest[:16]}-{src.stem}-int8.onnx"
    if out.is_file():
        return out
    from arcface.export.quantize import quantize_onnx

    try:
        quantize_onnx(src, out, method="static")
    except Exception as exc:  # InputError / ModelError / OSError: one message naming the model
        raise ModelError(f"{src}: int8 quantization for precision='int8' failed ({exc})") from exc
    return out
