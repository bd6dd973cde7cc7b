"""Gallery semantics: templates, open-set search, batch search, edits, metadata, contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arcface.errors import InputError
from arcface.gallery import UNKNOWN, EmbeddingContract, Gallery
from arcface.spec import ARCFACE_RECOGNITION

D = 32


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_template_is_normalised_mean_and_similarity_is_cosine() -> None:
    rng = np.random.default_rng(0)
    e = unit(rng.standard_normal((4, D)))
    g = Gallery(backend="numpy", threshold=0.0)
    g.enroll("a", e)
    expected = e.astype(np.float64).mean(0)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(g.template("a"), expected, atol=1e-6)
    q = unit(rng.standard_normal(D))
    res = g.search(q)
    assert res.identity == ("a" if float(q @ expected) >= 0 else UNKNOWN)
    assert res.similarity == pytest.approx(float(q @ expected), abs=1e-5)
    # non-unit input rows are normalised before averaging
    g.enroll("b", e * np.array([[1.0], [5.0], [0.2], [3.0]], np.float32))
    np.testing.assert_allclose(g.template("b"), g.template("a"), atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_open_set_threshold_and_top_k_order(backend: str) -> None:
    pytest.importorskip("faiss") if backend == "faiss" else None
    # identities on orthogonal axes: closed-form similarities
    g = Gallery(backend=backend, threshold=0.6)
    eye = np.eye(D, dtype=np.float32)
    for i in range(5):
        g.enroll(f"id{i}", eye[i])
    q = unit(0.8 * eye[2] + 0.6 * eye[4])  # cos 0.8 with id2, 0.6 with id4, 0 with others
    res = g.search(q, top_k=3)
    assert res.identity == "id2" and res.similarity == pytest.approx(0.8, abs=1e-6)
    assert [m.candidate for m in res.matches[:2]] == ["id2", "id4"]
    assert [m.similarity for m in res.matches[:2]] == pytest.approx([0.8, 0.6], abs=1e-6)
    assert res.matches[2].similarity == pytest.approx(0.0, abs=1e-6)
    assert res.matches[2].identity == UNKNOWN  # below threshold: reported as unknown
    # raising the threshold above the best similarity turns the decision to unknown
    strict = g.search(q, threshold=0.85)
    assert strict.identity == UNKNOWN and strict.matches[0].candidate == "id2"
    # top_k larger than the gallery returns every identity once
    assert len(g.search(q, top_k=50).matches) == 5


def test_batch_search_equals_single_searches() -> None:
    rng = np.random.default_rng(1)
    g = Gallery(backend="numpy", threshold=0.3)
    centres = unit(rng.standard_normal((20, D)))
    for i, c in enumerate(centres):
        g.enroll(f"p{i}", unit(c + 0.2 * rng.standard_normal((3, D))))
    queries = unit(np.concatenate([centres + 0.1 * rng.standard_normal((20, D)), rng.standard_normal((5, D))]))
    batch = g.search_batch(queries, top_k=4)
    singles = [g.search(q, top_k=4) for q in queries]
    assert [[m.candidate for m in r.matches] for r in batch] == [[m.candidate for m in r.matches] for r in singles]
    assert [r.identity for r in batch] == [r.identity for r in singles]
    np.testing.assert_allclose([r.similarity for r in batch], [r.similarity for r in singles], atol=1e-6)
    assert [r.identity for r in batch[:20]] == [f"p{i}" for i in range(20)]
    # brute-force reference over templates
    templates = np.stack([g.template(f"p{i}") for i in range(20)])
    best = (queries @ templates.T).max(1)
    np.testing.assert_allclose([r.similarity for r in batch], best, atol=1e-5)


def test_edits_metadata_and_errors() -> None:
    g = Gallery(backend="numpy", threshold=0.5)
    eye = np.eye(D, dtype=np.float32)
    info = g.enroll("  ann ", eye[0], {"role": "staff"})
    assert info["name"] == "ann" and info["images"] == 1 and info["metadata"] == {"role": "staff"}
    g.enroll("ann", eye[1], {"floor": 2})
    assert g.info("ann")["images"] == 2 and g.metadata("ann") == {"role": "staff", "floor": 2}
    g.enroll("ann", eye[3], replace=True)
    np.testing.assert_array_equal(g.embeddings("ann"), eye[3:4])
    g.enroll("ben", eye[5])
    g.rename("ann", "anna")
    assert g.search(eye[3]).identity == "anna"
    assert [d["name"] for d in g.list()] == ["anna", "ben"]
    g.remove("ben")
    assert g.search(eye[5]).identity == UNKNOWN and "ben" not in g
    g.close()  # a closed gallery rebuilds its index when searched again
    assert g.search(eye[3]).identity == "anna"
    with pytest.raises(InputError, match="no identity named 'ben'"):
        g.remove("ben")
    g.enroll("carl", eye[6])
    with pytest.raises(InputError, match="taken"):
        g.rename("carl", "anna")
    with pytest.raises(InputError, match="reserved"):
        g.enroll(UNKNOWN, eye[7])
    with pytest.raises(InputError, match="empty"):
        g.enroll("   ", eye[7])
    with pytest.raises(InputError, match="JSON"):
        g.enroll("dan", eye[7], {"bad": object()})
    with pytest.raises(InputError, match="zeros"):
        g.enroll("dan", np.zeros(D))
    with pytest.raises(InputError, match="NaN"):
        g.enroll("dan", np.full(D, np.nan))
    with pytest.raises(InputError, match="threshold"):
        g.search(eye[0], threshold=1.5)
    with pytest.raises(InputError, match="top_k"):
        g.search(eye[0], top_k=0)
    assert "dan" not in g  # failed enrolments leave nothing behind


def test_empty_gallery_answers_unknown() -> None:
    g = Gallery(backend="numpy")
    res = g.search(np.ones(8, np.float32))
    assert res.identity == UNKNOWN and res.similarity is None and res.matches == []
    assert g.search_batch(np.zeros((0, 8))) == []


def test_enroll_many_is_one_transaction(tmp_path: Path) -> None:
    eye = np.eye(D, dtype=np.float32)
    g = Gallery(tmp_path / "g", backend="numpy")
    with pytest.raises(InputError, match="dimension"):
        g.enroll_many({"a": eye[0], "b": np.ones(D + 1, np.float32)})
    assert len(g) == 0
    g.enroll_many({"a": eye[0], "b": eye[1]}, {"b": {"x": 1}})
    assert Gallery(tmp_path / "g", backend="numpy").names == ["a", "b"]


def test_contract_refuses_other_dims_and_models(tmp_path: Path) -> None:
    spec = ARCFACE_RECOGNITION.with_(embedding_dim=D)
    model_a = EmbeddingContract.from_model(spec, sha256="a" * 64, name="pack-a")
    model_b = EmbeddingContract.from_model(spec, sha256="b" * 64, name="pack-b")
    db = tmp_path / "g"
    g = Gallery(db, contract=model_a, backend="numpy")
    g.enroll("x", np.eye(D, dtype=np.float32)[0])
    with pytest.raises(InputError, match="dimension 16 but this gallery holds 32-d"):
        g.enroll("y", np.ones(16, np.float32))
    with pytest.raises(InputError, match="dimension"):
        g.search(np.ones(16, np.float32))
    with pytest.raises(InputError, match="pack-b.*pack-a"):
        g.enroll("y", np.ones(D, np.float32), contract=model_b)
    g.close()
    # the contract is persisted and checked on open
    with pytest.raises(InputError, match="different models"):
        Gallery(db, contract=model_b, backend="numpy")
    bgr = EmbeddingContract.from_model(spec.with_(color_order="BGR"), sha256="a" * 64)
    with pytest.raises(InputError, match="color_order"):
        Gallery(db, contract=bgr, backend="numpy")
    h = Gallery(db, backend="numpy")  # no model given: stored contract applies
    assert h.contract == model_a and h.contract.dim == D
    # a gallery made from raw embeddings learns the model digest when a model-backed enrolment comes
    raw = Gallery(tmp_path / "raw", backend="numpy")
    raw.enroll("x", np.ones(D, np.float32))
    assert raw.contract == EmbeddingContract(dim=D)
    raw.enroll("y", -np.ones(D, np.float32), contract=model_a)
    assert Gallery(tmp_path / "raw", backend="numpy").contract.model_sha256 == "a" * 64


def test_analyzer_contract_is_recorded_and_enforced() -> None:
    """The CLI and the service compose analyzer and gallery: embeddings plus the analyzer's contract."""
    spec = ARCFACE_RECOGNITION.with_(embedding_dim=D)
    analyzer = type(
        "A",
        (),
        {
            "embedder": type("E", (), {"spec": spec})(),
            "pack": type("P", (), {"name": "fake", "recognizer_sha256": "f" * 64})(),
        },
    )()
    contract = EmbeddingContract.from_analyzer(analyzer)
    g = Gallery(backend="numpy", threshold=0.5)
    g.enroll("p", np.eye(D, dtype=np.float32)[:2], {"src": "test"}, contract=contract)
    assert g.contract.model_sha256 == "f" * 64 and g.contract.input_spec["color_order"] == "RGB"
    assert g.info("p")["images"] == 2
    with pytest.raises(InputError, match="without a model contract"):
        g.enroll("q", np.eye(D, dtype=np.float32)[2])
