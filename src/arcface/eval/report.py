"""Reports: JSON files, Markdown tables and ROC plots (matplotlib, Agg backend, log-FAR axis).

Thresholds in reports are cosine similarities (accept ``score >= threshold``); the squared-L2 equivalent
``2 - 2 cos`` appears only in columns labelled so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import require
from arcface.io_utils import atomic_write, atomic_write_text


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def to_json(data: Any) -> str:
    """Indented JSON (numpy values converted, non-finite floats as ``null``)."""
    return json.dumps(_jsonable(data), indent=2, sort_keys=False)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as JSON atomically."""
    return atomic_write_text(path, to_json(data) + "\n")


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.2f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of verification results (one row per model x dataset).

    Each row is a result dict with ``model``, ``dataset``, ``accuracy``, ``std``, ``threshold``, ``eer``
    and ``tar_at_far`` (as produced by :meth:`VerificationSummary.to_dict`). Rates are in percent.
    """
    fars: list[str] = []
    for r in rows:
        for k in r.get("tar_at_far", {}):
            if k not in fars:
                fars.append(k)
    fars.sort(key=float)
    head = ["model", "dataset", "accuracy %", "threshold (cos)", "sq-L2 thr", "EER %"]
    head += [f"TAR@FAR={k} %" for k in fars]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = f"{_pct(r.get('accuracy'))} ± {_pct(r.get('std'))}" if r.get("accuracy") is not None else "-"
        thr = r.get("threshold")
        cells = [
            str(r.get("model", "")),
            str(r.get("dataset", "")),
            acc,
            "-" if thr is None else f"{thr:.4f}",
            "-" if thr is None else f"{2 - 2 * thr:.4f}",
            _pct(r.get("eer")),
        ]
        cells += [_pct(r.get("tar_at_far", {}).get(k)) for k in fars]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_roc(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
    title: str = "ROC",
    min_far: float | None = None,
) -> Path:
    """Save a ROC plot of several models: TAR against FAR on a log x axis.

    Args:
        curves: ``(label, fpr, tpr)`` per model. FPR = 0 cannot be drawn on a log axis: the x range
            starts at the smallest positive FPR of all curves (or ``min_far``), and each curve starts
            there at the TAR it reaches with no false accepts.
    """
    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    arrays = [(label, np.asarray(f, np.float64), np.asarray(t, np.float64)) for label, f, t in curves]
    positive = [float(f[f > 0].min()) for _, f, _ in arrays if (f > 0).any()]
    lo = min_far or min(positive + [1e-1])
    for label, fpr, tpr in arrays:
        keep = fpr > 0
        tpr0 = float(tpr[~keep].max()) if (~keep).any() else 0.0  # TAR reached at FAR = 0
        x = np.r_[lo, fpr[keep]]
        y = np.r_[tpr0, tpr[keep]]
        ax.step(x, y, where="post", label=label, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("FAR (false accept rate, log scale)")
    ax.set_ylabel("TAR (true accept rate)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    out = Path(path)
    try:
        with atomic_write(out) as f:
            fig.savefig(f, format=(out.suffix.lstrip(".") or "png").lower(), bbox_inches="tight")
    finally:
        plt.close(fig)
    return out
