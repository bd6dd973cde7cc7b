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

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "far": self.far,
            "provenance": self.provenance,
            "calibrated": self.calibrated,
            "source": self.source,
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
        value = entry.get("threshold") if isinstance(entry, dict) else None
        if not isinstance(value, int | float):
            raise InputError(f"{p}: recognizer {str(sha)[:16]}...: 'threshold' must be a cosine in [-1, 1]")
        check_threshold(value, f"{p}: recognizer {str(sha)[:16]}...: 'threshold'")
    return table


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


def _entry(entry: dict[str, Any], source: str) -> Threshold:
    where = "the package's calibration" if source == "package" else source
    provenance = str(entry.get("provenance") or "no provenance recorded")
    return Threshold(float(entry["threshold"]), entry.get("far"), f"{provenance} [{where}]", True, source)


def threshold_for(
    recognizer_sha256: str | None,
    recognizer_path: str | os.PathLike | None = None,
    files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> Threshold:
    """The threshold of the recognizer with this SHA-256 (see the module docstring for the search order).

    Args:
        recognizer_sha256: the recognizer file's digest (``None``: only the fallback can apply).
        recognizer_path: the recognizer file, to find a ``thresholds.json`` beside it.
        files: explicit thresholds files (``None``: ``$ARCFACE_THRESHOLDS``).
    Raises:
        InputError: a named thresholds file is missing or malformed.
    """
    candidates = threshold_files(files)
    if recognizer_path is not None:
        beside = Path(recognizer_path).parent / BESIDE
        if beside.is_file():
            candidates.append(beside)
    if recognizer_sha256:
        for f in candidates:
            entry = _cached(f).get(recognizer_sha256)
            if entry is not None:
                return _entry(entry, str(f))
        entry = _cached(package_thresholds_path()).get(recognizer_sha256)
        if entry is not None:
            return _entry(entry, "package")
    return Threshold(FALLBACK_THRESHOLD, None, "uncalibrated fallback for ArcFace-style models", False)


def check_threshold(value: float, what: str = "threshold") -> float:
    """``value`` as a float, or :class:`InputError` (``what`` names it) when it is not a cosine in ``[-1, 1]``
    (NaN included). The one range rule of every threshold the library takes."""
    if not -1.0 <= float(value) <= 1.0:
        raise InputError(f"{what} must be a cosine similarity in [-1, 1], got {value}")
    return float(value)
