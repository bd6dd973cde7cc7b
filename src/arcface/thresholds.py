"""Cosine decision thresholds: where they are stored and which one applies to a recognizer.

A threshold is a cosine similarity in ``[-1, 1]`` (accept when ``cosine >= threshold``; the squared-L2
equivalent of unit vectors is ``2 - 2 * cosine``). Thresholds are data, kept in JSON *thresholds files*::

    {"recognizers": {"<sha256 of the recognizer file>": {"threshold": 0.2703, "far": 0.001,
                                                          "provenance": "...", ...}}}

A recognizer's threshold is looked up by its file's SHA-256, first match wins:

1. the files given explicitly (``--thresholds FILE``, ``FaceAnalyzer(thresholds=...)``), else those named by
   ``$ARCFACE_THRESHOLDS`` (several joined with ``os.pathsep``);
2. ``thresholds.json`` beside the recognizer file (``arcface train``/``export`` write one there);
3. the package's ``arcface/data/thresholds.json`` (thresholds calibrated for the registered models; never
   written at run time: ``arcface calibrate --write FILE`` writes to FILE).

A recognizer found nowhere gets :data:`FALLBACK_THRESHOLD`, marked ``calibrated=False``.

Thresholds are calibrated with the reference engine (ONNX Runtime, f32). An entry may also record, under
``"agreement"``, how far another engine and precision stray from it on the same real pairs::

    "agreement": {"openvino/bf16": {"cosine_min": 0.9988, "cosine_mean": 0.9998, "decisions_changed": 8,
                                    "pairs": 81708, "faces": 474, "cpu": "...", "provenance": "..."}}

(``benchmarks/engine_agreement.py`` measures it). A threshold used with another engine says so in its
provenance, with that agreement or with a warning that it was not measured (then calibrate per engine).
``arcface calibrate --runtime R --precision P --write FILE`` stores a threshold calibrated with another engine
under the entry's ``"engines"`` table (``{"openvino/bf16": {"threshold": ..., ...}}``); that engine then uses it,
and an entry's ``"engine"`` field names the engine its main threshold was calibrated with (default the reference).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from arcface.errors import InputError

#: Used only for recognizers with no calibrated entry; a conservative value for ArcFace models.
FALLBACK_THRESHOLD = 0.30
#: The environment variable naming extra thresholds files.
ENV = "ARCFACE_THRESHOLDS"
#: The file name looked for beside a recognizer.
BESIDE = "thresholds.json"


@dataclass(frozen=True)
class Threshold:
    """A cosine decision threshold and where it came from.

    Attributes:
        value: the cosine threshold in ``[-1, 1]``.
        far: the false accept rate it was calibrated for (``None`` when unknown).
        provenance: which pairs, which rate, when.
        calibrated: ``False`` for the fallback.
        source: the thresholds file it was read from (``"package"`` for the package's own, ``""`` otherwise).
    """

    value: float
    far: float | None
    provenance: str
    calibrated: bool
    source: str = ""
    engine: str = "onnxruntime/f32"
    agreement: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "far": self.far,
            "provenance": self.provenance,
            "calibrated": self.calibrated,
            "source": self.source,
            "engine": self.engine,
            "agreement": self.agreement,
        }


def package_thresholds_path() -> Path:
    """The package's ``arcface/data/thresholds.json`` (read-only at run time)."""
    return Path(str(resources.files("arcface").joinpath("data/thresholds.json")))


def read_thresholds_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The ``recognizers`` table of a thresholds file.

    Raises:
        InputError: the file is missing, not JSON, or not shaped ``{"recognizers": {sha256: {"threshold": ...}}}``.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{p}: cannot read thresholds file ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: thresholds file is not valid JSON ({exc})") from None
    table = data.get("recognizers") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise InputError(f"{p}: a thresholds file holds {{'recognizers': {{sha256: {{'threshold': ...}}}}}}")
    for sha, entry in table.items():
        where = f"{p}: recognizer {str(sha)[:16]}..."
        _check_entry(entry, where)
        engines = entry.get("engines", {})
        if not isinstance(engines, dict):
            raise InputError(f"{where}: 'engines' must map 'runtime/precision' to entries")
        for name, sub in engines.items():
            _check_entry(sub, f"{where}: engine {name}")
    return table


def _check_entry(entry: Any, where: str) -> None:
    value = entry.get("threshold") if isinstance(entry, dict) else None
    if not isinstance(value, int | float):
        raise InputError(f"{where}: 'threshold' must be a cosine in [-1, 1]")
    check_threshold(value, f"{where}: 'threshold'")


def _cached(path: Path) -> dict[str, dict[str, Any]]:
    st = path.stat()
    return _read_cached(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=32)
def _read_cached(path: str, _mtime_ns: int, _size: int) -> dict[str, dict[str, Any]]:
    return read_thresholds_file(path)


def threshold_files(explicit: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """The explicit thresholds files, else those of ``$ARCFACE_THRESHOLDS`` (each must exist)."""
    if explicit is None:
        env = os.environ.get(ENV, "")
        names: list[str | os.PathLike] = [x for x in env.split(os.pathsep) if x.strip()]
        where = f"${ENV}"
    else:
        names = [explicit] if isinstance(explicit, str | os.PathLike) else list(explicit)
        where = "--thresholds"
    files = [Path(n).expanduser() for n in names]
    for f in files:
        if not f.is_file():
            raise InputError(f"{f}: thresholds file not found (from {where})")
    return files


#: The engine thresholds are calibrated with (kept equal to :data:`arcface.runtime.REFERENCE`).
REFERENCE_ENGINE = "onnxruntime/f32"


def _lookup(
    recognizer_sha256: str | None,
    recognizer_path: str | os.PathLike | None,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None,
) -> tuple[dict[str, Any], str] | None:
    """The first entry for the recognizer in the search order, with the file it came from."""
    candidates = threshold_files(files)
    if recognizer_path is not None:
        beside = Path(recognizer_path).parent / BESIDE
        if beside.is_file():
            candidates.append(beside)
    if not recognizer_sha256:
        return None
    for f in candidates:
        entry = _cached(f).get(recognizer_sha256)
        if entry is not None:
            return entry, str(f)
    entry = _cached(package_thresholds_path()).get(recognizer_sha256)
    return (entry, "package") if entry is not None else None


def agreement_for(
    recognizer_sha256: str | None,
    recognizer_path: str | os.PathLike | None = None,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> dict[str, dict[str, Any]]:
    """The measured agreement records (``{"openvino/bf16": {...}}``) of the recognizer's thresholds entry."""
    found = _lookup(recognizer_sha256, recognizer_path, files)
    table = found[0].get("agreement") if found else None
    return {str(k): v for k, v in table.items() if isinstance(v, dict)} if isinstance(table, dict) else {}


def threshold_for(
    recognizer_sha256: str | None,
    recognizer_path: str | os.PathLike | None = None,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    engine: str = REFERENCE_ENGINE,
) -> Threshold:
    """The threshold of the recognizer with this SHA-256 (see the module docstring for the search order).

    Args:
        recognizer_sha256: the recognizer file's digest (``None``: only the fallback can apply).
        recognizer_path: the recognizer file, to find a ``thresholds.json`` beside it.
        files: explicit thresholds files (``None``: ``$ARCFACE_THRESHOLDS``).
        engine: ``"runtime/precision"`` the recognizer runs with; other than the reference, the provenance
            names the engine and the measured agreement (or warns that none was measured).
    Raises:
        InputError: a named thresholds file is missing or malformed.
    """
    found = _lookup(recognizer_sha256, recognizer_path, files)
    if found is None:
        return Threshold(
            FALLBACK_THRESHOLD, None, "uncalibrated fallback for ArcFace-style models", False, engine=engine
        )
    entry, source = found
    calibrated_with = str(entry.get("engine") or REFERENCE_ENGINE)
    own = entry.get("engines", {}).get(engine) if engine != calibrated_with else None
    if isinstance(own, dict):  # calibrated with this very engine (arcface calibrate --runtime/--precision)
        entry, calibrated_with = own, engine
    where = "the package's calibration" if source == "package" else source
    provenance = f"{entry.get('provenance') or 'no provenance recorded'} [{where}]"
    record = None
    if engine != calibrated_with and calibrated_with != REFERENCE_ENGINE:
        provenance += f"; WARNING: calibrated with {calibrated_with}, used with {engine}: calibrate with this engine"
    elif engine != calibrated_with:
        table = entry.get("agreement") if isinstance(entry.get("agreement"), dict) else {}
        record = table.get(engine) if isinstance(table.get(engine), dict) else None
        if record is not None:
            provenance += (
                f"; used with {engine}: {record.get('decisions_changed')} of {record.get('pairs')} decisions "
                f"changed, embedding cosine min {record.get('cosine_min')} against {REFERENCE_ENGINE}"
            )
        elif engine.endswith("/f32"):
            provenance += f"; used with {engine} (f32, same arithmetic as {REFERENCE_ENGINE})"
        else:
            provenance += (
                f"; WARNING: calibrated with {REFERENCE_ENGINE}, agreement of {engine} not measured: "
                "calibrate with this engine for a guaranteed operating point"
            )
    return Threshold(float(entry["threshold"]), entry.get("far"), provenance, True, source, engine, record)


def check_threshold(value: float, what: str = "threshold") -> float:
    """``value`` as a float, or :class:`InputError` (``what`` names it) when it is not a cosine in ``[-1, 1]``
    (NaN included). The one range rule of every threshold the library takes."""
    if not -1.0 <= float(value) <= 1.0:
        raise InputError(f"{what} must be a cosine similarity in [-1, 1], got {value}")
    return float(value)
