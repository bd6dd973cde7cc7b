"""Threshold calibration: the cosine threshold that meets a target FAR on labelled pairs.

Pairs come as a CSV of image paths ``path_a,path_b,same`` (an optional header row; relative paths are
taken from ``--root`` or the CSV's folder) embedded through the detector + aligner + embedder (largest face of each
photo), or as an ``.npz`` holding ``scores`` (cosine) and ``labels`` (0/1).

Calibrated thresholds are stored in a JSON thresholds file (the format :mod:`arcface.thresholds` reads)::

    {"recognizers": {"<recognizer sha256>": {
        "threshold": 0.31,            # cosine, accept score >= threshold
        "far": 0.001,                 # target FAR
        "achieved_far": 0.0009, "tar": 0.97,
        "squared_l2_threshold": 1.38, # 2 - 2 * threshold, for tools that use squared L2
        "provenance": "arcface calibrate on pairs.csv: 520 pairs (...), FAR <= 1e-03, 2026-01-01",
        "pairs_file": "pairs.csv", "n_pairs": 520, "n_genuine": 100, "n_impostor": 420,
        "model": "buffalo_sc", "date": "2026-01-01T00:00:00+00:00"}}}
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.eval.metrics import OperatingPoint, threshold_at_far
from arcface.eval.report import atomic_write_text
from arcface.thresholds import REFERENCE_ENGINE


@dataclass
class PairList:
    """Image pairs to score: paths ``a[i]``, ``b[i]`` and the same-person flag ``same[i]`` (``None``: a file read
    with ``labels=False`` that has no third column)."""

    a: list[Path]
    b: list[Path]
    same: np.ndarray | None


def _flag(v: str) -> bool | None:
    t = v.strip().lower()
    if t in ("1", "true", "yes"):
        return True
    if t in ("0", "false", "no"):
        return False
    return None


def read_pairs_csv(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, labels: bool = True
) -> PairList:
    """Read ``path_a,path_b,same`` rows (a header row is recognised by a non-0/1 third field).

    Relative image paths are resolved against ``root`` (default: the CSV's folder). With ``labels=False`` the
    ``same`` column may be left out (of every row; ``PairList.same`` is then ``None``)."""
    p = Path(path)
    base = Path(root) if root is not None else p.parent
    if root is not None and not base.is_dir():
        raise InputError(f"--root {base}: folder not found")
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise InputError(f"{p}: cannot read pairs CSV ({exc.strerror or exc})") from exc
    if rows and len(rows[0]) >= 3 and _flag(rows[0][2]) is None:
        rows = rows[1:]
    a, b, same = [], [], []
    unlabelled = not labels and bool(rows) and len(rows[0]) == 2
    for i, r in enumerate(rows, 1):
        if unlabelled and len(r) != 2:
            raise InputError(f"{p}: row {i}: expected 'path_a,path_b' like the first row, got {r!r}")
        if not unlabelled and (len(r) < 3 or _flag(r[2]) is None):
            raise InputError(f"{p}: row {i}: expected 'path_a,path_b,same' with same in 0/1, got {r!r}")
        pa, pb = Path(r[0].strip()), Path(r[1].strip())
        a.append(pa if pa.is_absolute() else base / pa)
        b.append(pb if pb.is_absolute() else base / pb)
        if not unlabelled:
            same.append(_flag(r[2]))
    if not a:
        raise InputError(f"{p}: no pairs")
    return PairList(a, b, None if unlabelled else np.array(same, bool))


def read_scores_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` from an ``.npz`` with arrays ``scores`` (cosine) and ``labels`` (0/1)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["scores"], np.float64), np.asarray(z["labels"]).astype(bool)
    except KeyError as exc:
        raise InputError(f"{path}: the .npz must hold arrays 'scores' and 'labels' (missing {exc})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from exc


@dataclass
class PairScores:
    scores: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)  # images without a detected face
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (image, reason): files that cannot be read


def score_pairs(
    pairs: PairList,
    detector: Any,
    embedder: Any,
    aligner: Any | None = None,
    flip: bool = False,
    batch_size: int = 64,
    show_progress: bool = False,
) -> PairScores:
    """Cosine scores of pairs of photos: largest detected face of each photo, aligned and embedded.

    Pairs with a photo where no face is found are dropped (listed in ``skipped``), and so are pairs with a
    photo that cannot be read (listed in ``unreadable`` with the reason).
    """
    from arcface.eval.faces import default_aligner
    from arcface.eval.models import embed_crops, input_size, progress
    from arcface.imageio import load_image

    align = aligner or default_aligner()
    size = input_size(embedder)[0]
    uniq = list(dict.fromkeys(pairs.a + pairs.b))
    crops, found, skipped, unreadable = [], {}, [], []
    for q in progress(uniq, len(uniq), "detect", show_progress):
        try:
            img = load_image(q)
        except InputError as exc:
            unreadable.append((str(q), str(exc)))
            continue
        det = detector.detect(img)
        if len(det) == 0:
            skipped.append(str(q))
            continue
        b = np.asarray(det.boxes, np.float64)
        i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        found[q] = len(crops)
        crops.append(align(img, np.asarray(det.kps, np.float32)[i : i + 1], size)[0])
    if not crops:
        raise InputError("no face was found in any image of the pairs")
    emb = embed_crops(embedder, crops, batch_size, flip, total=len(crops), desc="embed", show_progress=show_progress)
    keep = np.array([a in found and b in found for a, b in zip(pairs.a, pairs.b, strict=True)])
    ia = np.array([found[a] for a, k in zip(pairs.a, keep, strict=True) if k], int)
    ib = np.array([found[b] for b, k in zip(pairs.b, keep, strict=True) if k], int)
    scores = np.sum(emb[ia] * emb[ib], axis=1).astype(np.float64) if keep.any() else np.zeros(0)
    return PairScores(scores, pairs.same[keep], skipped, unreadable)


def calibration_entry(
    op: OperatingPoint, labels: np.ndarray, pairs_file: str, model: str, date: _dt.datetime | None = None
) -> dict[str, Any]:
    """The thresholds-file entry for one calibration (see the module docstring)."""
    when = (date or _dt.datetime.now(_dt.timezone.utc)).replace(microsecond=0)
    n, g = int(labels.size), int(labels.sum())
    return {
        "threshold": op.threshold,
        "far": op.target_far,
        "achieved_far": op.far,
        "tar": op.tar,
        "squared_l2_threshold": 2.0 - 2.0 * op.threshold,
        "provenance": (
            f"arcface calibrate on {pairs_file}: {n} pairs ({g} genuine, {n - g} impostor), "
            f"FAR <= {op.target_far:g} (achieved {op.far:.3g}, TAR {op.tar:.3g}), {when.date().isoformat()}"
        ),
        "pairs_file": pairs_file,
        "n_pairs": n,
        "n_genuine": g,
        "n_impostor": n - g,
        "model": model,
        "date": when.isoformat(),
    }


def calibrate(scores: np.ndarray, labels: np.ndarray, far: float) -> OperatingPoint:
    """Lowest cosine threshold with FAR <= ``far`` on these pairs (see :func:`threshold_at_far`)."""
    return threshold_at_far(scores, labels, far)


def write_threshold(
    path: str | os.PathLike[str], recognizer_sha256: str, entry: dict[str, Any], engine: str = REFERENCE_ENGINE
) -> Path:
    """Merge ``entry`` for ``recognizer_sha256`` into a thresholds JSON file (atomic; the format
    :mod:`arcface.thresholds` reads).

    ``engine`` (``"runtime/precision"``) is the engine the pairs were scored with. The recognizer's main entry is
    replaced when it was calibrated with the same engine (or there is none); a threshold for another engine
    goes under its ``"engines"`` table, so each engine keeps its own operating point. The main entry's
    ``"engines"`` and ``"agreement"`` tables are kept.
    """
    p = Path(path)
    data: dict[str, Any] = {"recognizers": {}}
    if p.is_file():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: existing thresholds file is not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("recognizers", {}), dict):
            raise InputError(f"{p}: thresholds file must hold {{'recognizers': {{...}}}}")
        data.setdefault("recognizers", {})
    entry = {**entry, "engine": engine}
    current = data["recognizers"].get(recognizer_sha256)
    if not isinstance(current, dict) or current.get("engine", REFERENCE_ENGINE) == engine:
        for table in ("engines", "agreement"):
            if isinstance(current, dict) and isinstance(current.get(table), dict):
                entry[table] = current[table]
        data["recognizers"][recognizer_sha256] = entry
    else:
        current.setdefault("engines", {})[engine] = entry
    return atomic_write_text(p, json.dumps(data, indent=2, sort_keys=True) + "\n")
