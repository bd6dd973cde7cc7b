"""Clustering: a naive reference, synthetic identities (purity), chaining, and real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arcface.errors import InputError
from arcface.gallery import cluster_embeddings


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)}


def naive_average_linkage(x: np.ndarray, threshold: float) -> set[frozenset[int]]:
    """Textbook O(n^3) average linkage: merge the most similar pair of clusters while >= threshold."""
    sim = x.astype(np.float64) @ x.T.astype(np.float64)
    clusters = [[i] for i in range(len(x))]
    while len(clusters) > 1:
        best, pair = -np.inf, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                s = sim[np.ix_(clusters[a], clusters[b])].mean()
                if s > best:
                    best, pair = s, (a, b)
        if best < threshold:
            break
        a, b = pair
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return {frozenset(c) for c in clusters}


def purity_and_inverse(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Purity (each cluster's majority identity) and inverse purity (each identity's majority cluster)."""

    def score(a: np.ndarray, b: np.ndarray) -> float:
        return sum(np.bincount(b[a == c]).max() for c in np.unique(a)) / len(a)

    return score(labels, truth), score(truth, labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_linkage_equals_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((6, 16)))
    x = unit(np.repeat(centres, 6, axis=0) + 0.45 * rng.standard_normal((36, 16)))
    for threshold in (0.2, 0.4, 0.6):
        got = partition(cluster_embeddings(x, threshold, "average"))
        assert got == naive_average_linkage(x, threshold)


def test_synthetic_identities_are_recovered() -> None:
    rng = np.random.default_rng(5)
    n_ids, per_id, dim = 40, 8, 512
    centres = unit(rng.standard_normal((n_ids, dim)))
    truth = np.repeat(np.arange(n_ids), per_id)
    # noise giving about 0.55 cosine within an identity and about 0 across (like ArcFace embeddings)
    x = unit(centres[truth] + 0.045 * rng.standard_normal((truth.size, dim)) * np.sqrt(dim) / 20)
    within = (x[truth == 0] @ x[truth == 0].T)[np.triu_indices(per_id, 1)].mean()
    assert 0.4 < within < 0.8
    for method in ("average", "single"):
        labels = cluster_embeddings(x, 0.3, method)
        purity, inverse = purity_and_inverse(labels, truth)
        assert purity == 1.0 and inverse == 1.0, (method, purity, inverse)
        assert labels.max() + 1 == n_ids
    # labels are ordered by cluster size: a bigger identity becomes cluster 0
    big = np.concatenate([x, unit(centres[7] + 0.05 * rng.standard_normal((4, dim)))])
    assert cluster_embeddings(big, 0.3)[7 * per_id] == 0


def test_single_linkage_chains_average_linkage_does_not() -> None:
    # points along a great circle, 25 degrees apart: neighbours at cos 0.906, ends far apart
    angles = np.radians(np.arange(8) * 25.0)
    x = np.zeros((8, 4), np.float32)
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    assert len(np.unique(cluster_embeddings(x, 0.85, "single"))) == 1
    avg = cluster_embeddings(x, 0.85, "average")
    assert len(np.unique(avg)) > 1
    # every average-linkage cluster really has mean pairwise similarity >= threshold
    for c in np.unique(avg):
        members = x[avg == c]
        if len(members) > 1:
            sims = (members @ members.T)[np.triu_indices(len(members), 1)]
            assert sims.mean() >= 0.85


def test_edge_cases() -> None:
    assert cluster_embeddings(np.zeros((0, 8)), 0.5).shape == (0,)
    np.testing.assert_array_equal(cluster_embeddings(np.eye(3), 0.5), [0, 1, 2])
    np.testing.assert_array_equal(cluster_embeddings(np.ones((3, 4)), 0.5), [0, 0, 0])
    with pytest.raises(InputError, match="threshold"):
        cluster_embeddings(np.eye(3), 2.0)
    with pytest.raises(InputError, match="method"):
        cluster_embeddings(np.eye(3), 0.5, "ward")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape"):
        cluster_embeddings(np.ones(3), 0.5)


def _analyzer():
    try:
        from arcface.pipeline import FaceAnalyzer

        return FaceAnalyzer()
    except Exception as exc:  # noqa: BLE001 - any failure means the pipeline is not usable here
        pytest.skip(f"inference pipeline unusable: {exc}")


def test_real_photos_cluster_by_identity(shared_data: Path) -> None:
    root = shared_data / "face_recognition_by_identity"
    if not root.is_dir():
        pytest.skip("face_recognition_by_identity is absent")
    from arcface.face import largest_face

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    names = sorted({p.parent.name for p in files})
    truth = np.array([names.index(p.parent.name) for p in files])
    emb = np.stack([largest_face(faces).embedding for faces in _analyzer().analyze_many(files)])
    labels = cluster_embeddings(emb, 0.3)
    purity, inverse = purity_and_inverse(labels, truth)
    assert purity == 1.0  # no cluster mixes two people
    assert inverse >= 0.9  # and people are (almost) never split
