"""Verification callback: k-fold accuracy (against a brute-force reference), .bin loading, embedding."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.train.synthetic import make_identities, verification_pairs  # noqa: E402
from arcface.train.verification import (  # noqa: E402
    PairSet,
    VerificationCallback,
    embed_images,
    kfold_accuracy,
    load_pair_set,
)


def _brute_force_kfold(scores: np.ndarray, issame: np.ndarray, n_folds: int = 10) -> float:
    """Reference: for each fold, the best threshold over every training score, applied to the fold."""
    folds = np.array_split(np.arange(scores.size), n_folds)
    accs = []
    for test in folds:
        train = np.setdiff1d(np.arange(scores.size), test)
        best = max(np.unique(scores[train]), key=lambda t: np.mean((scores[train] >= t) == issame[train]))
        accs.append(np.mean((scores[test] >= best) == issame[test]))
    return float(np.mean(accs))


def test_kfold_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    issame = np.arange(600) % 2 == 0
    scores = np.where(issame, 0.5, 0.1) + rng.normal(0, 0.2, 600)
    a, b = _brute_force_kfold(scores, issame), kfold_accuracy(scores, issame)
    assert a == pytest.approx(b, abs=0.01)
    assert 0.75 < b < 0.95  # noisy but informative scores
    assert kfold_accuracy(np.where(issame, 0.9, 0.1), issame) == 1.0


class _ColourMean(torch.nn.Module):
    """An 'embedding' that is the mean colour: identities with different colours are separable."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_callback_on_bin_file(tmp_path):
    from arcface.eval.bin_sets import write_bin

    imgs, labels = make_identities(10, 4, seed=4)
    pimgs, issame = verification_pairs(imgs, labels, 40, seed=1)
    write_bin(tmp_path / "syn.bin", list(pimgs), issame.tolist())
    ps = load_pair_set(tmp_path / "syn.bin")
    assert ps.images.shape == (80, 112, 112, 3) and ps.issame.tolist() == issame.tolist()
    cb = VerificationCallback.from_paths(["syn"], str(tmp_path), every=5)
    assert cb.due(10) and not cb.due(7)
    emb = embed_images(_ColourMean(), ps.images)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    acc = cb.evaluate(_ColourMean())["val/syn"]
    direct = kfold_accuracy(np.sum(emb[0::2] * emb[1::2], axis=1), ps.issame)
    assert acc == pytest.approx(direct)
    with pytest.raises(Exception, match="not found"):
        VerificationCallback.from_paths(["missing"], str(tmp_path), every=5)
    assert isinstance(cb.sets[0], PairSet)
