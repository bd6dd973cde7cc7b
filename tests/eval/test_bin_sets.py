"""`.bin` verification sets: safe loading, round trip, evaluation with a fake embedder."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from eval_fakes import PatternEmbedder

from arcface.errors import InputError
from arcface.eval import bin_sets
from arcface.eval.metrics import kfold_accuracy


def _pairs(n_pairs: int, noise: float, seed: int = 0, size: int = 112):
    """Random 8x8 colour patterns upscaled: genuine pairs share a pattern (plus noise)."""
    rng = np.random.default_rng(seed)
    images, issame = [], []
    for i in range(n_pairs):
        same = i % 2 == 0
        a = rng.integers(0, 256, (8, 8, 3))
        b = a if same else rng.integers(0, 256, (8, 8, 3))
        for base in (a, b):
            big = np.kron(base, np.ones((size // 8, size // 8, 1)))
            big = big + rng.normal(0, noise, big.shape)
            images.append(np.clip(big, 0, 255).astype(np.uint8))
        issame.append(same)
    return images, issame


def test_write_load_round_trip(tmp_path):
    images, issame = _pairs(6, 5.0)
    path = bin_sets.write_bin(tmp_path / "set.bin", images, issame)
    bs = bin_sets.load_bin(path)
    assert bs.n_pairs == 6 and bs.issame.tolist() == issame and bs.name == "set"
    first = bin_sets.decode_image(bs.images[0])
    assert first.shape == (112, 112, 3)
    assert np.abs(first.astype(int) - images[0]).mean() < 10  # JPEG q95 (chroma subsampled)
    # RGB order kept: per-channel means agree (a BGR swap would move them by tens of levels)
    np.testing.assert_allclose(first.mean(axis=(0, 1)), images[0].mean(axis=(0, 1)), atol=2.0)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_loads_python2_style_and_numpy_bool(tmp_path):
    blobs = [bin_sets._encode(im, 90, "x") for im in _pairs(2, 1.0)[0]]
    for issame in (np.array([True, False]), [np.bool_(True), np.bool_(False)]):
        p = tmp_path / "np.bin"
        p.write_bytes(pickle.dumps((blobs, issame), protocol=2))  # uses _codecs.encode + numpy globals
        assert bin_sets.load_bin(p).issame.tolist() == [True, False]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.bin"
    p.write_bytes(pickle.dumps(([_Evil(marker)], [True]), protocol=2))
    with pytest.raises(InputError, match="not admitted"):
        bin_sets.load_bin(p)
    assert not marker.exists()
    # sanity: an ordinary unpickler would have run it
    pickle.loads(p.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    "payload, match",
    [
        ((["notbytes", b"x"], [True]), "image list"),
        (([b"a", b"b"], np.array([1], dtype=np.int64)), "not admitted"),
        (([b"a", b"b"], np.array([1.0])), "not admitted"),
        (([b"a", b"b", b"c"], [True]), "expected 2"),
        (([b"a", b"b"], [1]), "booleans"),
        ({"a": 1}, "pair"),
    ],
)
def test_malformed_sets_raise_input_error(tmp_path, payload, match):
    p = tmp_path / "bad.bin"
    p.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(InputError, match=match):
        bin_sets.load_bin(p)


def test_object_array_refused(tmp_path):
    p = tmp_path / "obj.bin"
    p.write_bytes(pickle.dumps(([b"a", b"b"], np.array([True], dtype=object)), protocol=2))
    with pytest.raises(InputError):
        bin_sets.load_bin(p)


def test_not_a_pickle(tmp_path):
    p = tmp_path / "junk.bin"
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match="junk.bin"):
        bin_sets.load_bin(p)
    with pytest.raises(InputError, match="cannot read"):
        bin_sets.load_bin(tmp_path / "missing.bin")


def test_evaluate_bin_matches_direct_computation(tmp_path):
    images, issame = _pairs(40, 20.0, seed=1)
    path = bin_sets.write_bin(tmp_path / "toy.bin", images, issame)
    emb = PatternEmbedder()
    res = bin_sets.evaluate_bin(path, emb, batch_size=16, fars=(0.1,))
    assert all(flip for _, flip in emb.calls) and max(s[0] for s, _ in emb.calls) == 16
    # independent: decode, embed each image alone, score pairs
    bs = bin_sets.load_bin(path)
    e = np.concatenate([emb.embed(bin_sets.decode_image(b)[None], flip=True) for b in bs.images])
    scores = np.sum(e[0::2] * e[1::2], axis=1)
    ref = kfold_accuracy(scores, np.asarray(issame), n_folds=10)
    assert res.accuracy == pytest.approx(ref.accuracy) and res.std == pytest.approx(ref.std)
    assert res.accuracy == 1.0  # genuine pairs share a pattern: separable
    assert res.eer == 0.0 and res.tar_at_far["1e-01"] == 1.0


def test_other_sizes_are_resized(tmp_path):
    images, issame = _pairs(4, 0.0, size=96)
    path = bin_sets.write_bin(tmp_path / "s96.bin", images, issame)
    emb = PatternEmbedder()
    e = bin_sets.embed_bin(bin_sets.load_bin(path), emb, flip=False)
    assert e.shape == (8, 192)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(e[0] @ e[1], 1.0, atol=1e-3)  # identical genuine pair
