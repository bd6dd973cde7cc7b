"""The ``int8`` precision: the recognizer's matrix products quantized once per model file, cached, run by ONNX
Runtime.

ONNX Runtime has no bf16 route on x86, but it runs int8 matrix products (``MatMulInteger``, VNNI/AMX where the CPU
has them). ``precision="int8"`` quantizes the *recognizer*'s ``MatMul``/``Gemm`` weights to 8 bits (ONNX Runtime's
dynamic quantization: activations quantized per batch at run time, so no calibration data) the first time it is
asked for, and keeps the result in ``$ARCFACE_CACHE_DIR/int8/`` under the fp32 file's SHA-256, so a changed model is
quantized again and never mixed up; the quantized file's own SHA-256 is kept beside it (``.sha256``) and checked
at every use, so a truncated or overwritten cache file is quantized again (with a warning naming it) instead of
run, and so is one that another user owns or every user may write (:func:`arcface.io_utils.untrusted`).
Convolutions stay in float: quantized dynamically they lose the embedding
(cosine 0.51 to f32 on real crops) and run slower; the fully connected layer, the largest of MobileFaceNet, keeps
cosine 0.9996 and gains speed (``benchmarks/bench_engines.py``). ``arcface export quantize`` makes a fully
static int8 model instead. The detector stays in f32 (:func:`arcface.runtime.sessions.role_precision`). Quantizing
needs the ``onnx`` package (in the ``train`` and ``dev`` extras).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from pathlib import Path

from arcface.errors import ModelError

log = logging.getLogger("arcface.runtime")

#: Operators whose weights are quantized.
INT8_OPS = ("MatMul", "Gemm")


def int8_available() -> bool:
    """Whether models can be quantized here (the ``onnx`` package is installed; it is not imported)."""
    return importlib.util.find_spec("onnx") is not None


def int8_cache_dir() -> Path:
    from arcface.io_utils import cache_dir

    return cache_dir() / "int8"


def int8_model(path: str | os.PathLike) -> Path:
    """The int8 copy of the fp32 ONNX recognizer ``path`` (made on first use, then read from the cache)."""
    from arcface.io_utils import sha256_file

    src = Path(path)
    if not int8_available():
        raise ModelError("precision int8 quantizes the recognizer with the onnx package: pip install onnx")
    digest = sha256_file(src)
    out = int8_cache_dir() / f"{digest[:16]}-{src.stem}-int8.onnx"
    check = out.with_name(out.name + ".sha256")  # the quantized file's own digest, written beside it
    if out.is_file():
        from arcface.io_utils import untrusted

        why = None
        try:
            why = untrusted(out.stat()) or untrusted(check.stat())
            if not why and check.read_text().strip() == sha256_file(out):
                return out
        except OSError:
            pass
        why = why or "damaged or unverified: its digest does not match"
        log.warning("%s: cached int8 model not used (%s); quantizing again", out, why)
    # no quant_pre_process: it opens its own ONNX Runtime session, which a process on the shared thread pool
    # refuses; the weights of these operators quantize the same without it
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=out.parent) as td:  # same folder: a rename publishes it
        q = Path(td) / "int8.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer advises pre-processing on the root logger at every call
        try:
            quantize_dynamic(
                str(src), str(q), weight_type=QuantType.QUInt8, per_channel=False, op_types_to_quantize=list(INT8_OPS)
            )
        except Exception as exc:  # onnxruntime.quantization raises assorted types
            raise ModelError(f"{src}: int8 quantization for precision='int8' failed ({exc})") from exc
        finally:
            root.setLevel(level)
        sidecar = Path(td) / "int8.sha256"
        sidecar.write_text(sha256_file(q) + "\n")
        os.replace(q, out)
        os.replace(sidecar, check)  # last: a file without its digest is quantized again
    return out
