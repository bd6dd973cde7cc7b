"""OpenVINO sessions: an ONNX model compiled by OpenVINO's CPU plugin behind ONNX Runtime's session interface.

One compiled model per input size for detectors, compiled models kept on disk (:mod:`arcface.runtime.ov_cache`),
and, for a model whose spec allows it, the conversion of uint8 pixels to the model's input done inside the compiled
model. Sessions are made and shared by :func:`arcface.runtime.sessions.get_session`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from arcface.errors import ModelError, first_line

#: Input sizes an :class:`OpenVinoSession` compiles a shape-specialised model for (then one dynamic model).
OV_SIZED_MAX = 4


def pixel_input(spec: Any) -> bool:
    """Whether an OpenVINO session can take raw pixels for a model with these input conventions (a float32
    NCHW input: its normalisation, colour order and layout then run inside the compiled model)."""
    return spec is not None and spec.input_dtype == "float32" and spec.layout == "NCHW"


class _Arg:
    """Name and shape of a model input or output, as ONNX Runtime describes them (dynamic dims as strings)."""

    def __init__(self, name: str, shape: list) -> None:
        self.name, self.shape = name, shape


def pixel_steps(spec: Any) -> str | None:
    """The conversion from uint8 RGB NHWC pixels to a float32 NCHW input, as one line (part of cache keys)."""
    if spec is None:
        return None
    swap = "reverse channels, " if spec.color_order == "BGR" else ""
    return f"u8 NHWC RGB -> f32, {swap}- mean {list(spec.mean)}, / std {list(spec.std)}, NCHW"


def _with_pixels(model: Any, spec: Any) -> Any:
    """``model`` (NCHW float input 0) taking uint8 RGB NHWC pixels: ``(pixel - mean) / std`` in the model's
    channel order, as :meth:`arcface.spec.ModelSpec.preprocess` computes it, done by the compiled model."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input(0).tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input(0).model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input(0).preprocess().convert_element_type(ov.Type.f32)
    if spec.color_order == "BGR":
        steps.reverse_channels()
    steps.mean([float(m) for m in spec.mean]).scale([float(v) for v in spec.std])
    return ppp.build()


def _dims(port: Any) -> list:
    """An OpenVINO port's shape as ONNX Runtime writes it: lengths, ``"?"`` for a free dimension."""
    return [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU, with ONNX Runtime's ``run``/``get_*`` interface.

    ``precision`` ``"bf16"`` asks the CPU plugin for bfloat16 inference (where the CPU has it), ``"f32"`` pins
    float32 (OpenVINO would otherwise choose bf16 by itself on such CPUs). Each thread gets its own infer request.

    A model whose input has free spatial dimensions (the detector: one canvas size per call) is compiled once per
    input size seen (the first :data:`OV_SIZED_MAX` sizes; the batch dimension stays free), since OpenVINO's CPU
    plugin runs a shape-specialised graph faster than a dynamic one (SCRFD-500M at 640 plus 160: 7.8 against
    9.5 ms here); further sizes share one dynamic compilation, made when first needed. A model with fixed input
    dimensions is compiled here, so its compile errors surface at construction; a sized model's at the first run
    of each size. Compiled models are kept on disk (:mod:`arcface.runtime.ov_cache`, checked before use), so the
    next process imports them instead of compiling (``disk_cache=False``: never).

    With ``pixels`` (a :class:`~arcface.spec.ModelSpec` with a float32 NCHW input), ``run`` takes uint8 RGB
    pixels ``(N, H, W, 3)`` for the first input instead (``takes_pixels`` is then true) and the spec's
    conversion (colour order, ``(pixel - mean) / std``, layout) runs inside the compiled model: the SCRFD
    detector's outputs are bit-identical to feeding :meth:`~arcface.spec.ModelSpec.preprocess`'s tensor, and
    the conversion no longer costs a separate pass over the canvas (about 1 ms of a 640x640 canvas here).
    ``get_inputs`` still describes the model's own input.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int,
        precision: str = "f32",
        disk_cache: bool = True,
        pixels: Any = None,
    ) -> None:
        from arcface.errors import require

        ov = require("openvino", "openvino")
        self._core = core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise ModelError(
                "this CPU has no bf16 support in OpenVINO (needs AVX-512 BF16 or AMX); use precision='f32'"
            )
        self._path = str(path)
        self._config = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": int(threads),
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.precision = precision
        if pixels is not None and not pixel_input(pixels):
            raise ModelError(f"{path}: pixels= needs a spec with a float32 NCHW input")
        self._pixels = pixels
        #: ``run`` takes uint8 RGB ``(N, H, W, 3)`` pixels for the first input (see the class docstring)
        self.takes_pixels = pixels is not None
        self._disk_cache = disk_cache
        #: how each compiled model was obtained, by input size: ``"compiled"`` or ``"disk cache"``
        self.origins: dict[tuple | None, str] = {}
        self._model: Any = None  # read when a model must be compiled (not when every one comes from the cache)
        from arcface.runtime import ov_cache

        ports = ov_cache.load_ports(self._path) if disk_cache else None
        if ports is None:
            model = self._read()
            ports = (
                [(p.get_any_name(), _dims(p)) for p in model.inputs],
                [(p.get_any_name(), _dims(p)) for p in model.outputs],
            )
            if disk_cache:
                ov_cache.store_ports(self._path, ports)
        self._inputs = [_Arg(n, shape) for n, shape in ports[0]]
        self._outputs = [_Arg(n, shape) for n, shape in ports[1]]
        first = self._inputs[0].shape
        #: compile one model per input size: a single input whose dimensions after the batch are not all fixed
        self._sized = len(self._inputs) == 1 and any(not isinstance(d, int) for d in first[1:])
        self._compiled: dict[tuple | None, Any] = {}  # input size (None: the dynamic model) -> compiled model
        self._compile_lock = threading.Lock()
        self._local = threading.local()
        if not self._sized:
            self._compiled_for(None)  # compile errors surface here, not at the first call

    def _compiled_for(self, size: tuple | None) -> Any:
        """The compiled model for inputs of ``size`` (dimensions after the batch; ``None``: the dynamic one)."""
        compiled = self._compiled.get(size)
        if compiled is not None:
            return compiled
        with self._compile_lock:
            if size not in self._compiled:
                self._compiled[size] = self._compile(size)
            return self._compiled[size]

    def _read(self) -> Any:
        """The model as OpenVINO reads it from the file (once)."""
        if self._model is None:
            try:
                self._model = self._core.read_model(self._path)
            except Exception as exc:  # OpenVINO raises its own exception types
                raise ModelError(f"{self._path}: OpenVINO cannot read the model ({first_line(exc)})") from exc
        return self._model

    def _compile(self, size: tuple | None) -> Any:
        """Import the model for ``size`` from the disk cache, or compile it (and store it there)."""
        from arcface.runtime import ov_cache

        settings = {**self._config, "pixels": pixel_steps(self._pixels)}
        try:
            key = ov_cache.entry_key(self._path, size, settings) if self._disk_cache else None
        except OSError:  # the file went away since it was read: compile what was read, cache nothing
            key = None
        compiled = ov_cache.load(self._core, key, self._config) if key else None
        if compiled is not None:
            self.origins[size] = "disk cache"
            return compiled
        model = self._read()
        if size is not None or self._pixels is not None:
            model = model.clone()  # the file's model stays as read
        if size is not None:
            model.reshape([-1, *size])  # the batch stays free
        if self._pixels is not None:
            model = _with_pixels(model, self._pixels)
        try:
            compiled = self._core.compile_model(model, "CPU", self._config)
        except Exception as exc:  # OpenVINO raises its own exception types
            raise ModelError(f"{self._path}: OpenVINO cannot compile the model ({first_line(exc)})") from exc
        self.origins[size] = "compiled"
        if key:
            ov_cache.store(key, compiled)
        return compiled

    def get_inputs(self) -> list[_Arg]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Arg]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [f"OpenVINO-CPU-{self.precision}"]

    def run(self, output_names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        size = None
        if self._sized:
            value = next(iter(feed.values()))
            size = tuple(int(d) for d in getattr(value, "shape", ())[1:]) or None
            if self.takes_pixels and size is not None and len(size) == 3:
                size = (size[2], size[0], size[1])  # pixels (H, W, C): the model's input is (C, H, W)
            if size not in self._compiled and len(self._compiled) - (None in self._compiled) >= OV_SIZED_MAX:
                size = None
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        request = requests.get(size)
        if request is None:
            request = requests[size] = self._compiled_for(size).create_infer_request()
        request.infer(feed, share_inputs=True)  # no copy of the inputs (0.3 ms per 640 canvas); the call is synchronous
        # outputs by position: compiling adds tensor names, so the ports' first names may differ from the file's
        by_name = {o.name: request.get_output_tensor(i).data for i, o in enumerate(self._outputs)}
        names = output_names or [o.name for o in self._outputs]
        return [by_name[n].copy() for n in names]
