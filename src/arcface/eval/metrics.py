"""Verification and identification metrics on cosine similarity scores.

Conventions used throughout:

* A *score* is a cosine similarity in ``[-1, 1]`` (higher = more alike). A pair is **accepted** ("same
  person") when ``score >= threshold``. All thresholds returned here are cosine thresholds; the
  squared-L2 distance between unit vectors is ``2 - 2 * cos`` and appears only where a report labels it.
* *Labels* are booleans: ``True`` for a genuine (same identity) pair, ``False`` for an impostor pair.
* FAR (false accept rate) = FPR; TAR (true accept rate) = TPR.

Everything is exact (computed from sorted scores, ties handled as one ROC step), no sampled threshold grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcface.errors import InputError

DEFAULT_FARS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)


def _check_scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise InputError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if s.size == 0:
        raise InputError("no scores given")
    if not np.all(np.isfinite(s)):
        raise InputError("scores contain NaN or infinite values")
    if y.dtype != bool:
        uniq = np.unique(y)
        if not np.all(np.isin(uniq, (0, 1))):
            raise InputError(f"labels must be 0/1 or booleans, got values {uniq[:5].tolist()}")
        y = y.astype(bool)
    return s, y


@dataclass(frozen=True)
class Roc:
    """An exact ROC curve.

    ``thresholds`` are decreasing cosine thresholds; point ``i`` is ``(fpr[i], tpr[i])`` obtained by
    accepting ``score >= thresholds[i]``. The first point is ``thresholds[0] = +inf`` (accept nothing:
    FPR = TPR = 0); the last threshold is the lowest score (accept everything: FPR = TPR = 1). Tied
    scores form one point (a diagonal step).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_pos: int
    n_neg: int


def roc_curve(scores: Any, labels: Any) -> Roc:
    """Exact ROC of cosine ``scores`` against boolean ``labels`` (both classes must be present)."""
    s, y = _check_scores_labels(scores, labels)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"ROC needs genuine and impostor pairs; got {n_pos} genuine, {n_neg} impostor")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    y_sorted = y[order]
    # Index of the last element of each run of equal scores.
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return Roc(fpr=fpr, tpr=tpr, thresholds=thresholds, n_pos=n_pos, n_neg=n_neg)


def tar_at_far(roc: Roc, fars: Sequence[float] | float) -> np.ndarray:
    """TAR at the given FARs, linearly interpolated along the ROC polyline.

    For a target ``far`` the ROC point with the largest TPR among those with ``fpr <= far`` is found;
    if its FPR equals ``far`` its TPR is returned, otherwise TPR is linearly interpolated on the segment
    to the next ROC point (this is the TAR reachable by randomising between the two neighbouring
    thresholds). When fewer than ``1 / far`` impostor pairs exist the figure is an interpolation
    towards the first ROC point and should be read with care; :func:`threshold_at_far` gives the
    conservative (non-interpolated) operating point instead.
    """
    f = np.atleast_1d(np.asarray(fars, dtype=np.float64))
    if np.any((f < 0) | (f > 1)):
        raise InputError(f"FAR targets must be in [0, 1], got {f.tolist()}")
    out = np.empty_like(f)
    n = roc.fpr.size
    for i, target in enumerate(f):
        j = int(np.searchsorted(roc.fpr, target, side="right"))  # first point with fpr > target
        lo = j - 1
        if j >= n or roc.fpr[lo] == target:
            out[i] = roc.tpr[lo]
            continue
        x0, x1 = roc.fpr[lo], roc.fpr[j]
        y0, y1 = roc.tpr[lo], roc.tpr[j]
        out[i] = y0 + (y1 - y0) * (target - x0) / (x1 - x0)
    return out


@dataclass(frozen=True)
class OperatingPoint:
    """A concrete threshold with the FAR/TAR it achieves on the data it was chosen on."""

    threshold: float
    far: float
    tar: float
    target_far: float

    def to_dict(self) -> dict[str, float]:
        return {
            "target_far": self.target_far,
            "threshold": self.threshold,
            "far": self.far,
            "tar": self.tar,
            "squared_l2_threshold": 2.0 - 2.0 * self.threshold,
        }


def _threshold_for_rate(negatives: np.ndarray, rate: float) -> float:
    """Lowest threshold ``t`` (accept ``score >= t``) with ``#{neg >= t} <= rate * N`` (conservative)."""
    neg = np.sort(np.asarray(negatives, dtype=np.float64))[::-1]
    k = int(np.floor(rate * neg.size + 1e-9))
    if k >= neg.size:
        return float(neg[-1])
    # Accept strictly above the (k+1)-th highest impostor score; ties with it are rejected.
    return float(np.nextafter(neg[k], np.inf))


def threshold_at_far(scores: Any, labels: Any, far: float) -> OperatingPoint:
    """The lowest cosine threshold whose FAR on these pairs does not exceed ``far`` (no interpolation).

    This is the calibration rule: among thresholds with ``FAR <= far``, take the one with the highest TAR.
    """
    s, y = _check_scores_labels(scores, labels)
    if not 0.0 <= far <= 1.0:
        raise InputError(f"FAR target must be in [0, 1], got {far}")
    neg, pos = s[~y], s[y]
    if neg.size == 0 or pos.size == 0:
        raise InputError("calibration needs genuine and impostor pairs")
    t = _threshold_for_rate(neg, far)
    return OperatingPoint(
        threshold=t,
        far=float(np.mean(neg >= t)),
        tar=float(np.mean(pos >= t)),
        target_far=float(far),
    )


def eer(roc: Roc) -> tuple[float, float]:
    """Equal error rate and the cosine threshold where FPR = FNR (= 1 - TPR).

    Found on the ROC polyline: the first segment where ``fpr - fnr`` changes sign is interpolated
    linearly; the threshold is interpolated the same way between the segment's end thresholds (the
    ``+inf`` end is replaced by the next finite threshold).
    """
    fnr = 1.0 - roc.tpr
    d = roc.fpr - fnr  # starts at -1 (fpr 0, fnr 1), ends at +1
    j = int(np.argmax(d >= 0))
    if d[j] == 0:
        thr = roc.thresholds[j] if np.isfinite(roc.thresholds[j]) else roc.thresholds[1]
        return float(roc.fpr[j]), float(thr)
    i = j - 1
    a = -d[i] / (d[j] - d[i])
    rate = roc.fpr[i] + a * (roc.fpr[j] - roc.fpr[i])
    t_i = roc.thresholds[i] if np.isfinite(roc.thresholds[i]) else roc.thresholds[j]
    thr = t_i + a * (roc.thresholds[j] - t_i)
    return float(rate), float(thr)


def best_threshold(scores: Any, labels: Any) -> tuple[float, float]:
    """Threshold maximising accuracy on ``(scores, labels)``; returns ``(threshold, accuracy)``.

    Candidates are the midpoints between consecutive distinct scores plus the two ends (accept all:
    the lowest score; reject all: just above the highest). Every distinct accuracy is reachable by one
    of them, so the maximum is exact. On ties the lowest such threshold wins.
    """
    s, y = _check_scores_labels(scores, labels)
    u, inv = np.unique(s, return_inverse=True)
    pos_at = np.bincount(inv, weights=y, minlength=u.size)
    neg_at = np.bincount(inv, weights=~y, minlength=u.size)
    # candidate k accepts the distinct values u[k:], k = 0..m
    suf_pos = np.r_[np.cumsum(pos_at[::-1])[::-1], 0.0]
    pre_neg = np.r_[0.0, np.cumsum(neg_at)]
    correct = suf_pos + pre_neg
    k = int(np.argmax(correct))
    if k == 0:
        thr = u[0]
    elif k == u.size:
        thr = np.nextafter(u[-1], np.inf)
    else:
        thr = 0.5 * (u[k - 1] + u[k])
    return float(thr), float(correct[k] / s.size)


@dataclass(frozen=True)
class KFoldResult:
    """LFW-protocol accuracy: threshold chosen on k-1 folds, accuracy measured on the held-out fold."""

    accuracy: float
    std: float
    threshold: float
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "std": self.std,
            "threshold": self.threshold,
            "squared_l2_threshold": 2.0 - 2.0 * self.threshold,
            "fold_accuracies": self.fold_accuracies.tolist(),
            "fold_thresholds": self.fold_thresholds.tolist(),
        }


def kfold_folds(n: int, n_folds: int = 10) -> np.ndarray:
    """Fold index of each of ``n`` pairs: contiguous, unshuffled blocks (as the LFW ``.bin`` protocol).

    Block sizes differ by at most one (the first ``n % n_folds`` folds get one extra pair).
    """
    if n_folds < 2 or n_folds > n:
        raise InputError(f"n_folds must be in [2, {n}], got {n_folds}")
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    return np.repeat(np.arange(n_folds), sizes)


def kfold_accuracy(
    scores: Any, labels: Any, n_folds: int = 10, folds: Sequence[int] | np.ndarray | None = None
) -> KFoldResult:
    """k-fold best-threshold accuracy (the LFW protocol).

    For each fold ``f`` the accuracy-maximising threshold is chosen on the other folds
    (:func:`best_threshold`) and applied to fold ``f``. Returns the mean and the population standard
    deviation (``ddof=0``, as the LFW tooling reports it) of the per-fold accuracies, and the mean of
    the per-fold thresholds.

    Args:
        folds: explicit fold index per pair (e.g. the 10 sets of LFW ``pairs.txt``); default contiguous
            blocks from :func:`kfold_folds`.
    """
    s, y = _check_scores_labels(scores, labels)
    fold_ids = kfold_folds(s.size, n_folds) if folds is None else np.asarray(folds).ravel()
    if fold_ids.shape != s.shape:
        raise InputError(f"folds has {fold_ids.size} entries for {s.size} pairs")
    uniq = np.unique(fold_ids)
    if uniq.size < 2:
        raise InputError("k-fold accuracy needs at least 2 folds")
    accs, thrs = [], []
    for f in uniq:
        test = fold_ids == f
        thr, _ = best_threshold(s[~test], y[~test])
        accs.append(float(np.mean((s[test] >= thr) == y[test])))
        thrs.append(thr)
    a = np.asarray(accs)
    t = np.asarray(thrs)
    return KFoldResult(
        accuracy=float(a.mean()),
        std=float(a.std()),
        threshold=float(t.mean()),
        fold_accuracies=a,
        fold_thresholds=t,
    )


# --------------------------------------------------------------------------- identification


def _mate_mask(probe_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    return np.asarray(probe_labels)[:, None] == np.asarray(gallery_labels)[None, :]


def identification_ranks(similarity: Any, probe_labels: Any, gallery_labels: Any) -> np.ndarray:
    """Rank (1-based) of each probe's best mated gallery entry; 0 for probes without a mate.

    ``similarity`` is the ``(P, G)`` cosine matrix. Rank = 1 + number of non-mated gallery entries whose
    score is ``>=`` the best mated score (ties count against the probe: pessimistic).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    pl = np.asarray(probe_labels)
    gl = np.asarray(gallery_labels)
    if sim.shape != (pl.size, gl.size):
        raise InputError(f"similarity has shape {sim.shape}, expected ({pl.size}, {gl.size})")
    mate = _mate_mask(pl, gl)
    has_mate = mate.any(axis=1)
    best_mate = np.where(mate, sim, -np.inf).max(axis=1)
    nonmate_above = np.sum(np.where(mate, False, sim >= best_mate[:, None]), axis=1)
    return np.where(has_mate, 1 + nonmate_above, 0)


def cmc(similarity: Any, probe_labels: Any, gallery_labels: Any, ranks: Sequence[int] = (1, 5, 10)) -> dict:
    """Closed-set identification rates (CMC) at the given ranks, over probes that have a gallery mate."""
    r = identification_ranks(similarity, probe_labels, gallery_labels)
    mated = r > 0
    if not mated.any():
        raise InputError("no probe has a mate in the gallery")
    return {int(k): float(np.mean(r[mated] <= k)) for k in ranks}


def tpir_at_fpir(
    similarity: Any,
    probe_labels: Any,
    gallery_labels: Any,
    fpirs: Sequence[float] = (1e-2, 1e-1),
    rank: int = 1,
) -> list[dict[str, float]]:
    """Open-set identification: TPIR at given FPIRs (NIST FRVT definitions).

    * A **non-mated** search (probe identity absent from the gallery) is a false positive at threshold
      ``t`` when its top-1 score is ``>= t``; FPIR = fraction of non-mated searches.
    * A **mated** search is a true positive when its mate is within ``rank`` and the mate's score is
      ``>= t``; TPIR = fraction of mated searches.

    The threshold for each target is the conservative one from the sorted non-mated top scores (the
    lowest with ``FPIR <= target``, no interpolation); the achieved FPIR is returned with it.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    pl = np.asarray(probe_labels)
    gl = np.asarray(gallery_labels)
    ranks = identification_ranks(sim, pl, gl)
    mated = ranks > 0
    if not mated.any() or mated.all():
        raise InputError("open-set identification needs both mated and non-mated probes")
    mate = _mate_mask(pl, gl)
    best_mate = np.where(mate, sim, -np.inf).max(axis=1)[mated]
    top_nonmated = sim[~mated].max(axis=1)
    out = []
    for target in fpirs:
        t = _threshold_for_rate(top_nonmated, float(target))
        hit = (ranks[mated] <= rank) & (best_mate >= t)
        out.append(
            {
                "target_fpir": float(target),
                "threshold": t,
                "fpir": float(np.mean(top_nonmated >= t)),
                "tpir": float(np.mean(hit)),
            }
        )
    return out


# --------------------------------------------------------------------------- summaries


@dataclass
class VerificationSummary:
    """Everything a verification benchmark reports, ready for JSON (:meth:`to_dict`)."""

    accuracy: float
    std: float
    threshold: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[str, float]
    operating_points: list[OperatingPoint]
    n_pairs: int
    n_genuine: int
    n_impostor: int
    roc: Roc | None = None
    kfold: KFoldResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, include_roc: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "accuracy": self.accuracy,
            "std": self.std,
            "threshold": self.threshold,
            "threshold_kind": "cosine (accept score >= threshold)",
            "squared_l2_threshold": 2.0 - 2.0 * self.threshold,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "tar_at_far": self.tar_at_far,
            "operating_points": [p.to_dict() for p in self.operating_points],
            "n_pairs": self.n_pairs,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
        }
        if self.kfold is not None:
            d["fold_accuracies"] = self.kfold.fold_accuracies.tolist()
            d["fold_thresholds"] = self.kfold.fold_thresholds.tolist()
        if include_roc and self.roc is not None:
            d["roc"] = {"fpr": self.roc.fpr.tolist(), "tpr": self.roc.tpr.tolist()}
        d.update(self.extra)
        return d


def far_key(far: float) -> str:
    """Stable JSON key of a FAR value, e.g. ``1e-3`` -> ``"1e-03"``."""
    return f"{far:.0e}"


def summarize_verification(
    scores: Any,
    labels: Any,
    fars: Sequence[float] = DEFAULT_FARS,
    n_folds: int | None = 10,
    folds: Sequence[int] | np.ndarray | None = None,
) -> VerificationSummary:
    """ROC, TAR@FAR (interpolated), conservative operating points, EER and k-fold accuracy.

    With ``n_folds=None`` and no ``folds`` the accuracy and threshold are the best-threshold figures on
    all pairs (no cross-validation; ``std`` is 0) - used for large protocols such as IJB.
    """
    s, y = _check_scores_labels(scores, labels)
    roc = roc_curve(s, y)
    e, e_thr = eer(roc)
    tars = tar_at_far(roc, fars)
    kf = None
    if folds is not None or n_folds is not None:
        kf = kfold_accuracy(s, y, n_folds=n_folds or 10, folds=folds)
        acc, std, thr = kf.accuracy, kf.std, kf.threshold
    else:
        thr, acc = best_threshold(s, y)
        std = 0.0
    return VerificationSummary(
        accuracy=acc,
        std=std,
        threshold=thr,
        eer=e,
        eer_threshold=e_thr,
        tar_at_far={far_key(f): float(t) for f, t in zip(fars, tars, strict=True)},
        operating_points=[threshold_at_far(s, y, f) for f in fars],
        n_pairs=int(s.size),
        n_genuine=int(y.sum()),
        n_impostor=int((~y).sum()),
        roc=roc,
        kfold=kf,
    )
