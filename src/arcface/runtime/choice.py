"""``runtime="auto"`` and ``precision="auto"``: which engine runs a pack on this machine, chosen by measurement.

The candidates are the engines that are installed and allowed:

- ``onnxruntime/f32`` (the reference: thresholds are calibrated with it) always;
- ``openvino/f32`` when the ``openvino`` extra is installed (same arithmetic, cosine >= 0.99999 to the reference);
- ``openvino/bf16`` (the recognizer in bf16, the detector in f32: :func:`arcface.runtime.sessions.role_precision`)
  only where the CPU has bf16 units *and* the recognizer's thresholds entry records a measured
  agreement with the reference that passes :data:`BARS` (``benchmarks/engine_agreement.py`` measures it on all
  within-set pairs of the real labelled photos and stores it beside the threshold's provenance);
- ``onnxruntime/int8`` (the recognizer quantized once and cached, see :mod:`arcface.runtime.int8`; the detector
  in f32) only where ``onnx`` is installed *and* its measured agreement passes :data:`BARS` likewise.

Each candidate runs the pack's detector (one 640x640 canvas) and recognizer (a batch of 8 crops) on synthetic
input, rounds interleaved, medians kept; the fastest total wins, but the reference is kept unless another engine
is at least :data:`SPEEDUP_NEEDED` times faster. One engine runs both models: timed apart, ONNX Runtime runs the
detector a little faster (6.6 against OpenVINO's 7.8 ms for the 640 and 160 canvases) and OpenVINO the recognizer
1.7x faster, but the mixed pair measured slower end to end than OpenVINO alone (players.jpg 146.8 against
115.6 ms, ``benchmarks/bench_engines.py``): two engines' thread pools contend for the same cores. Timings are
cached in ``engines.json`` under ``$ARCFACE_CACHE_DIR`` (default ``~/.cache/arcface``), keyed by the CPU
(:meth:`CpuInfo.key`), threads, engine versions and each model file's SHA-256, so the micro-benchmark (a few
seconds) runs once per machine and model.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError, ModelError
from arcface.runtime.cpu import cpu_info

log = logging.getLogger("arcface.runtime")

#: The engine thresholds are calibrated with.
REFERENCE = "onnxruntime/f32"
#: Another engine replaces the reference only when this many times faster on the pack's workload.
SPEEDUP_NEEDED = 1.10
#: Accuracy bars a reduced precision must pass (measured against the reference on real labelled pairs).
BARS: dict[str, dict[str, float]] = {
    "bf16": {"cosine_min": 0.999, "changed_max": 0.0005},
    "int8": {"cosine_min": 0.99, "changed_max": 0.0005},
}
CACHE_VERSION = 3  # 3: bf16 runs the detector in f32; OpenVINO compiles one model per canvas size
WORKLOAD = "detector at 640x640 (batch 1) + recognizer on 8 crops, medians of 7 interleaved rounds"


@dataclass(frozen=True)
class EngineChoice:
    """The engine that runs a pack here, and why.

    Attributes:
        runtime, precision: the engine (``"onnxruntime"``/``"openvino"``) and its precision (``"f32"``, ``"bf16"``
            on OpenVINO, ``"int8"`` on ONNX Runtime; either applies to the recognizer, the detector runs in f32).
        reason: one sentence a person can check (the measured speed-up, or why nothing was measured).
        timings_ms: milliseconds per workload (:data:`WORKLOAD`) of each measured engine, ``"runtime/precision"``.
        excluded: engines not considered, with the reason (not installed, no bf16 units, accuracy not measured).
        cpu: :meth:`CpuInfo.describe` of this machine.
        cached: the timings came from the cache file rather than a run now.
    """

    runtime: str
    precision: str
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    cpu: str = ""
    cached: bool = False

    @property
    def engine(self) -> str:
        return f"{self.runtime}/{self.precision}"

    @property
    def roles(self) -> dict[str, str]:
        """What each model runs on: ``{"detector": "openvino/f32", "recognizer": "openvino/bf16"}``."""
        from arcface.runtime.sessions import role_precision

        return {r: f"{self.runtime}/{role_precision(r, self.precision)}" for r in ("detector", "recognizer")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "precision": self.precision,
            "roles": self.roles,
            "reason": self.reason,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "excluded": dict(self.excluded),
            "cpu": self.cpu,
            "cached": self.cached,
        }


def agreement_allows(record: dict[str, Any] | None, precision: str) -> tuple[bool, str]:
    """Whether a measured agreement ``record`` lets ``precision`` be chosen automatically, and why (or why not).

    ``record`` holds ``cosine_min``, ``decisions_changed`` and ``pairs`` (see ``benchmarks/engine_agreement.py``).
    f32 engines need no record.
    """
    if precision == "f32":
        return True, "f32: same arithmetic as the reference"
    bars = BARS.get(precision)
    if bars is None:
        return False, f"unknown precision {precision!r}"
    if not record:
        return False, f"{precision} agreement with {REFERENCE} not measured for this recognizer"
    try:
        cos_min = float(record["cosine_min"])
        changed = int(record["decisions_changed"]) / max(1, int(record["pairs"]))
    except (KeyError, TypeError, ValueError):
        return False, f"{precision} agreement record is incomplete"
    if cos_min < bars["cosine_min"]:
        return False, f"{precision} embedding cosine min {cos_min:.5f} < {bars['cosine_min']}"
    if changed > bars["changed_max"]:
        return False, f"{precision} changed {changed:.4%} of decisions > {bars['changed_max']:.2%}"
    return True, f"{precision} measured: cosine min {cos_min:.5f}, {changed:.4%} of decisions changed"


def _candidates(runtime: str, precision: str, agreement: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    from arcface.runtime.int8 import int8_available
    from arcface.runtime.sessions import openvino_available

    check_engine_names(runtime, precision)
    cpu = cpu_info()
    allowed, excluded = [], {}
    engines = (("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16"), ("onnxruntime", "int8"))
    for rt, pr in engines:
        eng = f"{rt}/{pr}"
        if runtime not in ("auto", rt) or precision not in ("auto", pr):
            continue
        if rt == "openvino" and not openvino_available():
            excluded[eng] = "openvino is not installed (pip install 'arcface[openvino]')"
        elif pr == "bf16" and not cpu.bf16:
            excluded[eng] = "this CPU has no bf16 units (AVX-512 BF16 or AMX)"
        elif pr == "int8" and not int8_available():
            excluded[eng] = "int8 quantizes the recognizer with the onnx package (pip install onnx)"
        elif pr != "f32" and precision == "auto":  # chosen by name: the user's call; automatically: guarded
            ok, why = agreement_allows(agreement.get(eng), pr)
            if ok:
                allowed.append(eng)
            else:
                excluded[eng] = why
        else:
            allowed.append(eng)
    if not allowed:
        raise ModelError(
            f"no engine can run runtime={runtime!r} precision={precision!r} here: "
            + "; ".join(f"{k}: {v}" for k, v in excluded.items())
        )
    return allowed, excluded


def engine_cache_path() -> Path:
    """``engines.json`` in the cache folder (:func:`arcface.io_utils.cache_dir`)."""
    from arcface.io_utils import cache_dir

    return cache_dir() / "engines.json"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("onnxruntime", "openvino"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = ""
    return out


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: engine timings cache unreadable (%s); measuring again", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    from arcface.io_utils import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only home must not stop inference
        log.warning("%s: cannot store engine timings (%s)", path, exc)


def _feed(sess: Any, role: str) -> dict[str, np.ndarray]:
    inp = sess.get_inputs()[0]
    shape = list(inp.shape)
    side = 640 if role == "detector" else 112
    fill = {0: 1 if role == "detector" else 8, 2: side, 3: side}
    dims = [d if isinstance(d, int) and d > 0 else fill.get(i, 1) for i, d in enumerate(shape)]
    rng = np.random.default_rng(0)
    return {inp.name: rng.uniform(-1, 1, size=dims).astype(np.float32)}


def _open(path: Path, engine: str, threads: int) -> Any:
    from arcface.runtime.ov_session import OpenVinoSession
    from arcface.runtime.sessions import private_session

    rt, pr = engine.split("/")
    if pr == "int8":
        from arcface.runtime.int8 import int8_model

        path = int8_model(path)
    return private_session(path, threads) if rt == "onnxruntime" else OpenVinoSession(path, threads, pr)


def time_engines(path: Path, role: str, engines: list[str], threads: int, rounds: int = 7) -> dict[str, list[float]]:
    """Milliseconds per run of ``path`` (``role`` ``"detector"`` or ``"recognizer"``) under each engine: one
    sample per round, engines interleaved round by round after two warm-up runs each."""
    from arcface.runtime.sessions import role_precision

    sessions = {}
    for e in engines:
        rt, pr = e.split("/")
        sessions[e] = _open(path, f"{rt}/{role_precision(role, pr)}", threads)
    feeds = {e: _feed(s, role) for e, s in sessions.items()}
    for e, s in sessions.items():
        for _ in range(2):
            s.run(None, feeds[e])
    samples: dict[str, list[float]] = {e: [] for e in engines}
    for r in range(rounds):
        order = engines if r % 2 == 0 else engines[::-1]
        for e in order:
            t0 = time.perf_counter()
            for _ in range(3):
                sessions[e].run(None, feeds[e])
            samples[e].append((time.perf_counter() - t0) * 1000 / 3)
    return samples


def _digest(path: Path) -> str:
    from arcface.io_utils import sha256_file

    return sha256_file(path)


def choose_engine(
    recognizer: str | os.PathLike,
    detector: str | os.PathLike | None = None,
    runtime: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    agreement: dict[str, dict[str, Any]] | None = None,
    use_cache: bool = True,
) -> EngineChoice:
    """The engine for a pack's ``recognizer`` and ``detector`` model files (ONNX) on this machine.

    Args:
        recognizer, detector: the ONNX files the engine will run (``detector=None``: a detector that is not an
            ONNX model, such as MTCNN, is not timed).
        runtime, precision: ``"auto"`` or a fixed value; a fixed pair is returned as is, without measuring.
        threads: intra-op threads the models will run with (default: all usable cores).
        agreement: the recognizer's measured agreement records, ``{"openvino/bf16": {...}}``
            (see :func:`arcface.thresholds.agreement_for`); bf16 and int8 are only chosen automatically when one
            passes.
        use_cache: read and update the timings cache (:func:`engine_cache_path`).
    Raises:
        ModelError: no allowed engine can run the request (e.g. openvino asked for but not installed).
    """
    from arcface.runtime.sessions import default_threads

    threads = threads or default_threads()
    cpu = cpu_info()
    allowed, excluded = _candidates(runtime, precision, agreement or {})
    if len(allowed) == 1:
        rt, pr = allowed[0].split("/")
        fixed = runtime != "auto" and precision != "auto"
        others = "; ".join(dict.fromkeys(excluded.values())) or "no other candidate"
        why = "chosen by name" if fixed else f"the only allowed engine ({others})"
        return EngineChoice(rt, pr, why, {}, excluded, cpu.describe())
    versions = _versions()
    path = engine_cache_path()
    entries = _read_cache(path) if use_cache else {}
    medians: dict[str, float] = dict.fromkeys(allowed, 0.0)
    cached = True
    models = [("recognizer", Path(recognizer))] + ([("detector", Path(detector))] if detector else [])
    for role, model in models:
        key = f"{cpu.key()}:{threads}:{_digest(model)}"
        entry = entries.get(key)
        if not entry or entry.get("versions") != versions or not set(allowed) <= set(entry.get("ms", {})):
            cached = False
            try:
                samples = time_engines(model, role, allowed, threads)
            except ModelError:
                raise
            except Exception as exc:  # engines raise their own types
                raise ModelError(f"{model}: the engine micro-benchmark failed ({exc})") from exc
            entry = {
                "ms": {e: statistics.median(v) for e, v in samples.items()},
                "range_ms": {e: [min(v), max(v)] for e, v in samples.items()},
                "role": role,
                "model": model.name,
                "versions": versions,
                "cpu": cpu.describe(),
                "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "workload": WORKLOAD,
            }
            entries[key] = entry
        for e in allowed:
            medians[e] += float(entry["ms"][e])
    if use_cache and not cached:
        _write_cache(path, entries)
    best = min(allowed, key=lambda e: medians[e])
    base = REFERENCE if REFERENCE in allowed else f"{allowed[0]}"
    speedup = medians[base] / medians[best] if medians[best] > 0 else 1.0
    if best != base and speedup < SPEEDUP_NEEDED:
        reason = f"{best} only {speedup:.2f}x faster than {base} (needs {SPEEDUP_NEEDED:.2f}x): kept {base}"
        best = base
    elif best != base:
        reason = f"{speedup:.2f}x faster than {base} on this CPU ({medians[best]:.1f} vs {medians[base]:.1f} ms)"
    else:
        others = [f"{e} {medians[e]:.1f} ms" for e in allowed if e != best]
        reason = f"fastest measured ({medians[best]:.1f} ms; {', '.join(others)})"
    rt, pr = best.split("/")
    return EngineChoice(rt, pr, reason, medians, excluded, cpu.describe(), cached)


def check_engine_names(runtime: str, precision: str) -> None:
    """:class:`InputError` for an unknown runtime or precision name (before any model is opened)."""
    from arcface.runtime.sessions import PRECISIONS, RUNTIMES

    if runtime not in (*RUNTIMES, "auto"):
        raise InputError(f"runtime must be one of {', '.join((*RUNTIMES, 'auto'))}, got {runtime!r}")
    if precision not in (*PRECISIONS, "auto"):
        raise InputError(f"precision must be one of {', '.join((*PRECISIONS, 'auto'))}, got {precision!r}")
