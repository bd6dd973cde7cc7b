"""Metrics against hand-computed cases and brute-force references on random data."""

from __future__ import annotations

import numpy as np
import pytest

from arcface.errors import InputError
from arcface.eval import metrics as M


def _brute_roc(s, y):
    thr = np.r_[np.inf, np.unique(s)[::-1]]
    fpr = np.array([np.mean(s[~y] >= t) for t in thr])
    tpr = np.array([np.mean(s[y] >= t) for t in thr])
    return fpr, tpr, thr


def _random_pairs(rng, n, ties=False):
    y = rng.random(n) < 0.5
    s = rng.normal(size=n) * 0.2 + np.where(y, 0.4, 0.0)
    if ties:
        s = np.round(s, 1)
    return np.clip(s, -1, 1), y


def test_roc_hand_case():
    s = [0.9, 0.8, 0.8, 0.3, 0.1]
    y = [1, 1, 0, 0, 1]
    roc = M.roc_curve(s, y)
    np.testing.assert_allclose(roc.thresholds, [np.inf, 0.9, 0.8, 0.3, 0.1])
    np.testing.assert_allclose(roc.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.5, 1, 1])


@pytest.mark.parametrize("ties", [False, True])
def test_roc_matches_brute_force(ties):
    rng = np.random.default_rng(0)
    for _ in range(5):
        s, y = _random_pairs(rng, 300, ties)
        roc = M.roc_curve(s, y)
        fpr, tpr, thr = _brute_roc(s, y)
        np.testing.assert_allclose(roc.thresholds, thr)
        np.testing.assert_allclose(roc.fpr, fpr)
        np.testing.assert_allclose(roc.tpr, tpr)


def test_tar_at_far_interpolates_and_hits_points():
    # 4 impostors, 2 genuines: ROC points (0,0) (0,.5) (.25,.5) (.5,1) (1,1)
    s = [0.9, 0.6, 0.7, 0.5, 0.2, 0.1]
    y = [1, 1, 0, 0, 0, 0]
    roc = M.roc_curve(s, y)
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.25, 0.25, 0.5, 0.75, 1.0])
    got = M.tar_at_far(roc, [0.0, 0.25, 0.125, 0.2, 1.0])
    # far 0 -> 0.5 (max tpr at fpr 0); 0.25 -> 1.0 (point (.25, 1)); 0.125 -> halfway (0,.5)->(.25,.5)
    np.testing.assert_allclose(got, [0.5, 1.0, 0.5, 0.5, 1.0])
    roc2 = M.roc_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])  # (0,0)(0,.5)(.5,.5)(.5,1)(1,1)
    np.testing.assert_allclose(M.tar_at_far(roc2, [0.25]), [0.5])
    roc3 = M.roc_curve([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0])  # diagonal tie step (0,.5)->(.5,1)
    np.testing.assert_allclose(M.tar_at_far(roc3, [0.25, 0.1]), [0.75, 0.6])


def test_tar_at_far_brute_at_achievable_points():
    rng = np.random.default_rng(1)
    s, y = _random_pairs(rng, 500, ties=True)
    roc = M.roc_curve(s, y)
    fpr, tpr, _ = _brute_roc(s, y)
    for f in np.unique(fpr):
        assert M.tar_at_far(roc, f)[0] == pytest.approx(tpr[fpr <= f].max())


def test_threshold_at_far_is_conservative_and_best():
    rng = np.random.default_rng(2)
    s, y = _random_pairs(rng, 1000, ties=True)
    for far in (0.0, 0.001, 0.01, 0.1, 0.5):
        op = M.threshold_at_far(s, y, far)
        assert op.far <= far + 1e-12
        assert op.far == pytest.approx(np.mean(s[~y] >= op.threshold))
        assert op.tar == pytest.approx(np.mean(s[y] >= op.threshold))
        # brute force: best TAR over all thresholds with FAR <= far
        cands = np.r_[np.unique(s), np.inf]
        best = max(np.mean(s[y] >= t) for t in cands if np.mean(s[~y] >= t) <= far)
        assert op.tar == pytest.approx(best)


def test_eer_hand_and_brute():
    # symmetric: pos {0.8, 0.6}, neg {0.7, 0.2}: at t in (0.6, 0.7]: fpr .5 fnr .5 -> EER 0.5
    e, t = M.eer(M.roc_curve([0.8, 0.6, 0.7, 0.2], [1, 1, 0, 0]))
    assert e == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    s, y = _random_pairs(rng, 4000)
    e, t = M.eer(M.roc_curve(s, y))
    grid = np.linspace(-1, 1, 20001)
    fpr = np.array([np.mean(s[~y] >= g) for g in grid])
    fnr = np.array([np.mean(s[y] < g) for g in grid])
    k = np.argmin(np.abs(fpr - fnr))
    assert e == pytest.approx((fpr[k] + fnr[k]) / 2, abs=2e-3)
    assert t == pytest.approx(grid[k], abs=5e-3)


def _brute_best_accuracy(s, y):
    u = np.unique(s)
    cands = np.r_[u, (u[1:] + u[:-1]) / 2, u[-1] + 1, u[0] - 1]
    return max(np.mean((s >= t) == y) for t in cands)


def test_best_threshold_matches_brute():
    rng = np.random.default_rng(4)
    for ties in (False, True):
        s, y = _random_pairs(rng, 400, ties)
        thr, acc = M.best_threshold(s, y)
        assert acc == pytest.approx(_brute_best_accuracy(s, y))
        assert acc == pytest.approx(np.mean((s >= thr) == y))


def test_kfold_accuracy_matches_reference():
    rng = np.random.default_rng(5)
    s, y = _random_pairs(rng, 600, ties=True)
    res = M.kfold_accuracy(s, y, n_folds=10)
    folds = np.repeat(np.arange(10), 60)
    accs = []
    for f in range(10):
        tr, te = folds != f, folds == f
        thr = res.fold_thresholds[f]
        assert np.mean((s[tr] >= thr) == y[tr]) == pytest.approx(_brute_best_accuracy(s[tr], y[tr]))
        accs.append(np.mean((s[te] >= thr) == y[te]))
    assert res.accuracy == pytest.approx(np.mean(accs))
    assert res.std == pytest.approx(np.std(accs))
    assert res.threshold == pytest.approx(np.mean(res.fold_thresholds))


def test_kfold_separable_and_explicit_folds():
    s = np.r_[np.linspace(0.5, 0.9, 20), np.linspace(-0.2, 0.2, 20)]
    y = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    folds = np.tile(np.arange(4), 10)
    res = M.kfold_accuracy(s, y, folds=folds)
    assert res.accuracy == 1.0 and res.std == 0.0
    assert 0.2 < res.threshold < 0.5
    assert M.kfold_folds(11, 3).tolist() == [0] * 4 + [1] * 4 + [2] * 3


def test_identification_hand_case():
    sim = np.array(
        [
            [0.9, 0.1, 0.2],  # probe A: mate A at rank 1
            [0.5, 0.4, 0.6],  # probe B: mate B (0.4) below A (0.5) and C (0.6) -> rank 3
            [0.3, 0.7, 0.7],  # probe C: tie with B -> pessimistic rank 2
            [0.2, 0.3, 0.1],  # probe D: no mate
        ]
    )
    ranks = M.identification_ranks(sim, ["A", "B", "C", "D"], ["A", "B", "C"])
    assert ranks.tolist() == [1, 3, 2, 0]
    assert M.cmc(sim, ["A", "B", "C", "D"], ["A", "B", "C"], ranks=(1, 2, 3)) == {
        1: pytest.approx(1 / 3),
        2: pytest.approx(2 / 3),
        3: 1.0,
    }


def test_tpir_at_fpir_brute():
    rng = np.random.default_rng(6)
    n_id, n_probe = 50, 400
    g = rng.normal(size=(n_id, 16))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    pl = rng.integers(0, 2 * n_id, size=n_probe)  # half the probes unmated
    p = np.where((pl < n_id)[:, None], g[np.minimum(pl, n_id - 1)], 0) + rng.normal(size=(n_probe, 16)) * 0.9
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    sim = p @ g.T
    res = M.tpir_at_fpir(sim, pl, np.arange(n_id), fpirs=(0.01, 0.1, 0.5))
    mated = pl < n_id
    top_nm = sim[~mated].max(axis=1)
    best = sim[mated, pl[mated]]
    top_all = sim[mated].max(axis=1)
    for r in res:
        t = r["threshold"]
        assert r["fpir"] <= r["target_fpir"] + 1e-12
        # brute: lowest threshold among candidates with FPIR <= target
        cands = np.r_[np.unique(np.r_[top_nm, best]), np.inf]
        ok = [c for c in cands if np.mean(top_nm >= c) <= r["target_fpir"]]
        tb = min(ok)
        assert np.mean(top_nm >= t) == pytest.approx(np.mean(top_nm >= tb))
        assert r["tpir"] == pytest.approx(np.mean((best >= top_all) & (best >= tb)))


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        M.roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(InputError):
        M.roc_curve([0.1, np.nan], [1, 0])
    with pytest.raises(InputError):
        M.roc_curve([0.1, 0.2], [1, 2])
    with pytest.raises(InputError):
        M.kfold_accuracy([0.1, 0.2], [1, 0], n_folds=10)


def test_summary_dict_has_cli_keys():
    rng = np.random.default_rng(7)
    s, y = _random_pairs(rng, 200)
    d = M.summarize_verification(s, y, fars=(1e-2, 1e-1)).to_dict(include_roc=True)
    for key in ("accuracy", "std", "threshold", "eer", "tar_at_far", "roc"):
        assert key in d
    assert set(d["tar_at_far"]) == {"1e-02", "1e-01"}
    assert d["squared_l2_threshold"] == pytest.approx(2 - 2 * d["threshold"])
