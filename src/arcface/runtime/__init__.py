"""The inference engine layer: run an ONNX model on a batch, with ONNX Runtime or OpenVINO, chosen per machine.

- :mod:`arcface.runtime.sessions`: sessions for one engine (``get_session``), the shared thread pool.
- :mod:`arcface.runtime.ov_session`: OpenVINO behind ONNX Runtime's session interface.
- :mod:`arcface.runtime.ov_cache`: OpenVINO's compiled models kept on disk, checked before use.
- :mod:`arcface.runtime.cpu`: what this CPU offers (AVX2, AVX-512, AVX-512 BF16, AMX, VNNI).
- :mod:`arcface.runtime.choice`: ``runtime="auto"``/``precision="auto"``: a one-off micro-benchmark of the
  allowed engines, cached per machine and model digest, and the accuracy guard on reduced precision.
"""

from arcface.runtime.choice import (
    REFERENCE,
    EngineChoice,
    agreement_allows,
    choose_engine,
    engine_cache_path,
)
from arcface.runtime.cpu import CpuInfo, cpu_info
from arcface.runtime.ov_session import OpenVinoSession
from arcface.runtime.sessions import (
    PRECISIONS,
    RUNTIMES,
    default_providers,
    default_threads,
    dynamic_batch,
    get_session,
    openvino_available,
    private_session,
    session_options,
    shared_pool_threads,
    thread_pool_mode,
)

__all__ = [
    "PRECISIONS",
    "REFERENCE",
    "RUNTIMES",
    "CpuInfo",
    "EngineChoice",
    "OpenVinoSession",
    "agreement_allows",
    "choose_engine",
    "cpu_info",
    "default_providers",
    "default_threads",
    "dynamic_batch",
    "engine_cache_path",
    "get_session",
    "openvino_available",
    "private_session",
    "session_options",
    "shared_pool_threads",
    "thread_pool_mode",
]
