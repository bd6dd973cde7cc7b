"""Deployment: ONNX export with a parity check and ``config.json`` (:mod:`.onnx`), int8 quantization
(:mod:`.quantize`).

``export_onnx`` needs the ``train`` extra (torch); ``quantize_onnx`` needs only onnxruntime. Both are
imported lazily so that ``import arcface.export`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportResult", "QuantizeResult", "export_onnx", "quantize_onnx"]

_WHERE = {
    "ExportResult": "arcface.export.onnx",
    "export_onnx": "arcface.export.onnx",
    "QuantizeResult": "arcface.export.quantize",
    "quantize_onnx": "arcface.export.quantize",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'arcface.export' has no attribute {name!r}")
