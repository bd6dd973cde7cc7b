"""Model sessions configured for this machine, created once per (file, engine, settings) and reused.

Two engines run an ONNX model here: ONNX Runtime (the default) and OpenVINO (``runtime="openvino"``, the
``openvino`` extra), whose CPU plugin can run in ``bf16`` on CPUs with AVX-512 BF16 or AMX (``precision``; ``f32``
otherwise). :class:`~arcface.runtime.ov_session.OpenVinoSession` offers the part of ONNX Runtime's session API
that the detector and the embedder use (``run``, ``get_inputs``, ``get_outputs``, ``get_providers``), so either
engine plugs in unchanged.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import onnxruntime as ort

from arcface.errors import ModelError, first_line

_SESSIONS: dict[tuple, ort.InferenceSession] = {}
_LOCK = threading.Lock()
_SHARED_POOL: int | None = None  # intra-op threads of the process-wide pool, once created
_POOL_LOCK = threading.Lock()


#: ONNX Runtime thread-pool modes (:func:`thread_pool_mode`).
POOL_MODES: tuple[str, ...] = ("session", "shared", "spin")


def thread_pool_mode() -> str:
    """How ONNX Runtime sessions get their threads (``ARCFACE_ORT_POOL``):

    - ``"session"`` (the library's default): one pool per session whose threads spin while a run lasts and stop
      when it ends (``session.force_spinning_stop``), so the detector's idle pool leaves the cores to the
      recognizer's and to the Python, OpenCV and decoding work between runs;
    - ``"shared"``: every session of the process on one pool (what the ``arcface`` command and the service used
      before ``"session"`` stopped the spinning; no faster now). Once a shared pool exists ONNX Runtime refuses
      sessions that do not use it, so a program that also creates its own sessions should keep the default (or
      create them with :func:`session_options`);
    - ``"spin"``: ONNX Runtime's own default, one pool per session that keeps spinning after each run: the
      detector's and the recognizer's pools then spin against each other on few cores (2.2x slower on a
      one-face photo here). Kept for comparison (``benchmarks/bench_thread_pool.py``).
    """
    mode = os.environ.get("ARCFACE_ORT_POOL", "session").strip().lower()
    return mode if mode in POOL_MODES else "session"


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Session options for this process's thread-pool mode: every session arcface creates comes from here."""
    threads = threads or default_threads()
    opts = ort.SessionOptions()
    mode = thread_pool_mode()
    if _SHARED_POOL is not None or mode == "shared":
        _shared_pool(threads)
        opts.use_per_session_threads = False  # ONNX Runtime refuses per-session pools once a shared one exists
    else:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if mode == "session":
            opts.add_session_config_entry("session.force_spinning_stop", "1")
    return opts


def default_threads() -> int:
    """Intra-op threads: ``ARCFACE_THREADS`` if set, else the number of usable CPU cores."""
    from arcface.runtime.cpu import usable_cores

    env = os.environ.get("ARCFACE_THREADS")
    return max(1, int(env)) if env else usable_cores()


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu offers it, then CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("f32", "bf16", "int8")
#: Roles whose model runs in a reduced precision (bf16, int8) when one is asked for; the others run in f32.
REDUCED_ROLES = ("recognizer",)


def role_precision(role: str, precision: str) -> str:
    """The precision a model of ``role`` (``"detector"``/``"recognizer"``) runs in under an engine's ``precision``.

    bf16 and int8 apply to :data:`REDUCED_ROLES` only; the detector stays in f32 because its landmarks decide the
    alignment: with the detector in bf16 too, one face of ../shared/data's labelled photos fell to cosine 0.949
    against f32 and 19 of 81,708 decisions changed; with the recognizer alone in bf16, cosine min 0.9995 and 6
    changed at the recalibrated threshold (``benchmarks/engine_agreement.py``, AMD EPYC with AVX-512 BF16).
    """
    return "f32" if precision in ("bf16", "int8") and role not in REDUCED_ROLES else precision


def openvino_available() -> bool:
    """True when the ``openvino`` package (the ``openvino`` extra) is installed; it is not imported."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def get_session(
    path: str | os.PathLike,
    threads: int | None = None,
    providers: list[str] | None = None,
    runtime: str = "onnxruntime",
    precision: str = "f32",
    pixels: Any = None,
) -> Any:
    """A shared session for ``path`` (thread-safe ``run``): ONNX Runtime's, or an OpenVINO one
    (:class:`~arcface.runtime.ov_session.OpenVinoSession`).

    ``pixels``: the model's :class:`~arcface.spec.ModelSpec`, to let an OpenVINO session take uint8 RGB pixels
    ``(N, H, W, 3)`` and apply the spec's conversion inside the compiled model; an OpenVINO session's
    ``takes_pixels`` says whether it does (ONNX Runtime's sessions have no such attribute and always take the
    float tensor)."""
    path = Path(path)
    threads = threads or default_threads()
    if runtime not in RUNTIMES or precision not in PRECISIONS:
        raise ModelError(f"runtime must be one of {RUNTIMES} and precision one of {PRECISIONS}")
    if runtime == "onnxruntime" and precision == "bf16":
        raise ModelError("ONNX Runtime has no bf16 route on x86; bf16 needs runtime='openvino'")
    if precision == "int8":
        if runtime != "onnxruntime":
            raise ModelError("precision int8 runs through ONNX Runtime (runtime='onnxruntime')")
        from arcface.runtime.int8 import int8_model

        path = int8_model(path)
    if runtime == "openvino":
        from arcface.runtime.ov_session import OpenVinoSession, pixel_input, pixel_steps

        spec = pixels if pixel_input(pixels) else None
        key_ov = (str(path.resolve()), threads, "openvino", precision, pixel_steps(spec))
        with _LOCK:
            sess = _SESSIONS.get(key_ov)
            if sess is None:
                sess = _SESSIONS[key_ov] = OpenVinoSession(path, threads, precision, pixels=spec)
            return sess
    providers = providers or default_providers()
    key = (str(path.resolve()), threads, tuple(providers))
    with _LOCK:
        sess = _SESSIONS.get(key)
        if sess is None:
            opts = session_options(threads)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3  # fixed-batch output shapes in some exports warn at every call
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
            except Exception as exc:  # onnxruntime raises several private exception types
                raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from exc
            _SESSIONS[key] = sess
        return sess


def _shared_pool(threads: int) -> None:
    """Create the process-wide pool on first use (``threads`` intra-op threads; later sizes share it)."""
    global _SHARED_POOL
    with _POOL_LOCK:
        if _SHARED_POOL is None:
            ort.set_global_thread_pool_sizes(threads, 1)
            _SHARED_POOL = threads


def private_session(model: str | os.PathLike | bytes, threads: int | None = None) -> ort.InferenceSession:
    """An uncached CPU session (for checks on files that may be replaced); :class:`ModelError` if unloadable."""
    opts = session_options(threads)
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises private exception types
        where = "model bytes" if isinstance(model, bytes) else str(model)
        raise ModelError(f"{where}: ONNX Runtime cannot load the model ({first_line(exc)})") from exc


def shared_pool_threads() -> int | None:
    """Intra-op threads of the process-wide ONNX Runtime pool, or ``None`` while none has been created."""
    return _SHARED_POOL


def dynamic_batch(sess: ort.InferenceSession) -> bool:
    """True when the first input's batch dimension is symbolic (a batch of any size may be run)."""
    dim = sess.get_inputs()[0].shape[0]
    return not isinstance(dim, int)
