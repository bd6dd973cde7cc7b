"""Measure what a converted recognizer (int8, re-export) changes against a reference one.

* :func:`embedding_agreement`: cosine between the two models' embeddings of the same crops (mean, min);
* :func:`pair_verification`: verification accuracy on labelled pairs of real photos
  (``../shared/data/deepface_pairs.csv``): accuracy at one shared cosine threshold, 10-fold accuracy
  (LFW protocol) and how many same/different decisions changed;
* :func:`throughput`: faces per second at a given batch size.

Embeddings are L2-normalised; similarities are cosine in ``[-1, 1]``.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.face import largest_face


def embedding_agreement(emb_a: np.ndarray, emb_b: np.ndarray) -> dict[str, float]:
    """Mean and min cosine between corresponding rows of two ``(N, D)`` embedding sets."""
    from arcface.export.onnx import row_cosine

    c = row_cosine(emb_a, emb_b)
    return {"mean_cosine": float(c.mean()), "min_cosine": float(c.min()), "n": int(c.size)}


@dataclass
class LabelledPairs:
    """Aligned crops of labelled photo pairs: ``crops[i]`` is the largest face of ``files[i]``;
    ``pairs`` are ``(i, j)`` indices into them with ``same`` (bool)."""

    files: list[Path]
    crops: np.ndarray
    pairs: np.ndarray
    same: np.ndarray
    skipped: int


def load_deepface_pairs(data_dir: str | os.PathLike, analyzer: Any = None) -> LabelledPairs:
    """Detect + align the largest face of every photo in ``deepface_pairs.csv`` (with ``deepface_labels.csv``
    mapping each file to ``deepface_by_identity/<identity>/``); pairs whose photo has no face are skipped."""
    root = Path(data_dir)
    pairs_csv, labels_csv = root / "deepface_pairs.csv", root / "deepface_labels.csv"
    for f in (pairs_csv, labels_csv):
        if not f.is_file():
            raise InputError(f"{f}: labelled pairs file not found")
    with open(labels_csv, newline="", encoding="utf-8") as f:
        identity = {r["file"]: r["identity"] for r in csv.DictReader(f)}
    with open(pairs_csv, newline="", encoding="utf-8") as f:
        rows = [(r["file_x"], r["file_y"], int(r["same"])) for r in csv.DictReader(f)]
    names = sorted({n for a, b, _ in rows for n in (a, b) if n in identity})
    if analyzer is None:
        from arcface.pipeline import FaceAnalyzer

        analyzer = FaceAnalyzer()
    index: dict[str, int] = {}
    files: list[Path] = []
    crops: list[np.ndarray] = []
    for n in names:
        path = root / "deepface_by_identity" / identity[n] / n
        if not path.is_file():
            continue
        faces = analyzer.analyze(path, with_crops=True, embed=False)
        if not faces:
            continue
        index[n] = len(files)
        files.append(path)
        crops.append(largest_face(faces).crop)
    kept = [(index[a], index[b], s) for a, b, s in rows if a in index and b in index]
    if not kept:
        raise InputError(f"{root}: no labelled pair with a detectable face in both photos")
    arr = np.asarray(kept, dtype=np.int64)
    return LabelledPairs(files, np.stack(crops), arr[:, :2], arr[:, 2].astype(bool), len(rows) - len(kept))


def pair_verification(emb: np.ndarray, pairs: LabelledPairs, threshold: float) -> dict[str, Any]:
    """Verification figures of one model's embeddings (rows matching ``pairs.crops``)."""
    from arcface.eval.metrics import kfold_accuracy

    scores = np.sum(emb[pairs.pairs[:, 0]] * emb[pairs.pairs[:, 1]], axis=1)
    accept = scores >= threshold
    k = kfold_accuracy(scores, pairs.same, n_folds=10)
    return {
        "accuracy_at_threshold": float(np.mean(accept == pairs.same)),
        "threshold": float(threshold),
        "kfold_accuracy": k.accuracy,
        "kfold_std": k.std,
        "scores": scores,
        "accept": accept,
    }


def throughput(embedder: Any, crops: np.ndarray, batch: int = 32, seconds: float = 3.0) -> float:
    """Faces per second of ``embedder.embed`` on batches of ``batch`` crops (after one warm-up batch)."""
    if len(crops) == 0:
        raise InputError("throughput needs at least one crop")
    reps = int(np.ceil(batch / len(crops)))
    x = np.ascontiguousarray(np.concatenate([crops] * reps)[:batch])
    embedder.embed(x, batch_size=batch)
    n, t0 = 0, time.perf_counter()
    while True:
        embedder.embed(x, batch_size=batch)
        n += batch
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def compare_recognizers(
    ref_path: str | os.PathLike,
    new_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    batch: int = 32,
    seconds: float = 3.0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Accuracy and speed of ``new_path`` against ``ref_path`` (both ONNX recognizers with their JSON specs).

    With ``data_dir`` (``../shared/data``) the labelled deepface pairs are used for agreement and
    verification; otherwise the default pack's sample photos give agreement and speed only. The shared
    threshold is the reference model's calibrated one when known, else the one maximising its accuracy.
    """
    from arcface.embed.onnx import OnnxEmbedder
    from arcface.eval.metrics import best_threshold
    from arcface.export.crops import reference_crops
    from arcface.export.quantize import spec_for
    from arcface.models.packs import sha256_file
    from arcface.thresholds import threshold_for

    ref = OnnxEmbedder(ref_path, spec_for(ref_path), threads=threads)
    new = OnnxEmbedder(new_path, spec_for(new_path), threads=threads)
    report: dict[str, Any] = {"reference": str(ref_path), "candidate": str(new_path)}
    pairs = load_deepface_pairs(data_dir) if data_dir is not None else None
    crops = pairs.crops if pairs is not None else reference_crops(28)
    e_ref, e_new = ref.embed(crops), new.embed(crops)
    report["agreement"] = embedding_agreement(e_ref, e_new)
    if pairs is not None:
        thr = threshold_for(sha256_file(ref_path), ref_path)
        value = (
            thr.value
            if thr.calibrated
            else best_threshold(np.sum(e_ref[pairs.pairs[:, 0]] * e_ref[pairs.pairs[:, 1]], axis=1), pairs.same)[0]
        )
        v_ref = pair_verification(e_ref, pairs, value)
        v_new = pair_verification(e_new, pairs, value)
        diff = np.abs(v_ref["scores"] - v_new["scores"])
        report["verification"] = {
            "pairs": int(len(pairs.same)),
            "skipped_pairs": pairs.skipped,
            "images": len(pairs.files),
            "threshold": value,
            "threshold_source": "calibrated (reference)" if thr.calibrated else "best on reference",
            "reference": {k: v for k, v in v_ref.items() if k not in ("scores", "accept")},
            "candidate": {k: v for k, v in v_new.items() if k not in ("scores", "accept")},
            "decisions_changed": int(np.sum(v_ref["accept"] != v_new["accept"])),
            "max_abs_score_change": float(diff.max()),
            "mean_abs_score_change": float(diff.mean()),
        }
    report["speed"] = {
        "batch": batch,
        "reference_faces_per_s": throughput(ref, crops, batch, seconds),
        "candidate_faces_per_s": throughput(new, crops, batch, seconds),
    }
    report["speed"]["speedup"] = report["speed"]["candidate_faces_per_s"] / report["speed"]["reference_faces_per_s"]
    return report


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines of :func:`compare_recognizers`' figures."""
    a = report["agreement"]
    lines = [
        f"reference: {report['reference']}",
        f"candidate: {report['candidate']}",
        f"embedding agreement on {a['n']} real faces: mean cosine {a['mean_cosine']:.5f}, min {a['min_cosine']:.5f}",
    ]
    v = report.get("verification")
    if v:
        r, c = v["reference"], v["candidate"]
        lines += [
            f"verification on {v['pairs']} labelled pairs ({v['images']} photos, {v['skipped_pairs']} pairs skipped):",
            f"  accuracy at cosine {v['threshold']:.4f} ({v['threshold_source']}): "
            f"reference {r['accuracy_at_threshold']:.4f}, candidate {c['accuracy_at_threshold']:.4f}",
            f"  10-fold accuracy: reference {r['kfold_accuracy']:.4f} +- {r['kfold_std']:.4f}, "
            f"candidate {c['kfold_accuracy']:.4f} +- {c['kfold_std']:.4f}",
            f"  decisions changed: {v['decisions_changed']}; pair cosine change mean {v['mean_abs_score_change']:.4f}, "
            f"max {v['max_abs_score_change']:.4f}",
        ]
    s = report["speed"]
    lines.append(
        f"speed at batch {s['batch']}: reference {s['reference_faces_per_s']:.1f} faces/s, "
        f"candidate {s['candidate_faces_per_s']:.1f} faces/s ({s['speedup']:.2f}x)"
    )
    return "\n".join(lines)
