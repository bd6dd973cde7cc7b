"""ONNX Runtime sessions configured for this machine, created once per (file, settings) and reused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import onnxruntime as ort

from arcface.errors import ModelError

_SESSIONS: dict[tuple, ort.InferenceSession] = {}
_LOCK = threading.Lock()
_SHARED_POOL: int | None = None  # intra-op threads of the process-wide pool, once created
_POOL_LOCK = threading.Lock()


def thread_pool_mode() -> str:
    """``"session"`` (the library's default): one ONNX Runtime thread pool per session. ``"shared"``: every
    session of the process runs on one pool, so the detector's and the recognizer's pools never spin against
    each other (``benchmarks/bench_thread_pool.py``). The ``arcface`` command and the service, which own their
    process, use ``"shared"``; set ``ARCFACE_ORT_POOL`` to choose. Once a shared pool exists, ONNX Runtime
    refuses sessions that do not use it, so a program that also creates its own sessions should keep the
    default (or create them with :func:`session_options`)."""
    mode = os.environ.get("ARCFACE_ORT_POOL", "session").strip().lower()
    return mode if mode in ("shared", "session") else "session"


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Session options for this process's thread-pool mode: every session arcface creates comes from here."""
    threads = threads or default_threads()
    opts = ort.SessionOptions()
    if _SHARED_POOL is not None or thread_pool_mode() == "shared":
        _shared_pool(threads)
        opts.use_per_session_threads = False  # ONNX Runtime refuses per-session pools once a shared one exists
    else:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def default_threads() -> int:
    """Intra-op threads: ``ARCFACE_THREADS`` if set, else the number of usable CPU cores."""
    env = os.environ.get("ARCFACE_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def default_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu offers it, then CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def get_session(
    path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None
) -> ort.InferenceSession:
    """A shared :class:`onnxruntime.InferenceSession` for ``path`` (thread-safe ``run``)."""
    path = Path(path)
    threads = threads or default_threads()
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
                raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from exc
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
        raise ModelError(f"{where}: ONNX Runtime cannot load the model ({str(exc).splitlines()[0]})") from exc


def use_shared_pool() -> None:
    """Run every session of this process on one thread pool (for programs that own their process: the CLI)."""
    os.environ.setdefault("ARCFACE_ORT_POOL", "shared")


def dynamic_batch(sess: ort.InferenceSession) -> bool:
    """True when the first input's batch dimension is symbolic (a batch of any size may be run)."""
    dim = sess.get_inputs()[0].shape[0]
    return not isinstance(dim, int)
