"""ONNX Runtime sessions configured for this machine, created once per (file, settings) and reused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import onnxruntime as ort

from arcface.errors import ModelError

_SESSIONS: dict[tuple, ort.InferenceSession] = {}
_LOCK = threading.Lock()


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
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3  # fixed-batch output shapes in some exports warn at every call
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
            except Exception as exc:  # onnxruntime raises several private exception types
                raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from exc
            _SESSIONS[key] = sess
        return sess


def dynamic_batch(sess: ort.InferenceSession) -> bool:
    """True when the first input's batch dimension is symbolic (a batch of any size may be run)."""
    dim = sess.get_inputs()[0].shape[0]
    return not isinstance(dim, int)
