"""Every vector-index backend against a brute-force reference, through random upserts and removals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from arcface.errors import DependencyError, InputError
from arcface.gallery import Gallery
from arcface.gallery.backends import VectorIndex, make_index

D = 48
HAS_FAISS = importlib.util.find_spec("faiss") is not None
HAS_MILVUS = importlib.util.find_spec("pymilvus") is not None and importlib.util.find_spec("milvus_lite")
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss-cpu is not installed")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Reference:
    def __init__(self) -> None:
        self.vecs: dict[int, np.ndarray] = {}

    def upsert(self, ids: np.ndarray, x: np.ndarray) -> None:
        self.vecs.update({int(i): v for i, v in zip(ids, x, strict=True)})

    def remove(self, ids: np.ndarray) -> None:
        for i in ids:
            self.vecs.pop(int(i), None)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array(sorted(self.vecs), np.int64)
        sims = q @ np.stack([self.vecs[i] for i in ids]).T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, 1), ids[order]


def milvus_index(tmp_path: Path) -> VectorIndex:
    if not HAS_MILVUS:
        pytest.skip("pymilvus/milvus-lite are not installed")
    try:
        return make_index("milvus", D, uri=str(tmp_path / "m.db"), collection="t")
    except DependencyError as exc:
        pytest.skip(f"milvus-lite does not work here: {exc}")


FACTORIES = {
    "numpy": lambda tmp: make_index("numpy", D),
    "faiss-flat": lambda tmp: make_index("faiss", D, ann_threshold=None),
    "faiss-flat-native": lambda tmp: make_index("faiss", D, ann_threshold=None, exact_search="faiss"),
    "faiss-hnsw": lambda tmp: make_index("faiss", D, force="hnsw", ef_search=64),
    "faiss-ivf": lambda tmp: make_index("faiss", D, ann_threshold=60, ann="ivf", nlist=8, nprobe=8),
    "faiss-flat-float16": lambda tmp: make_index("faiss", D, ann_threshold=None, storage="float16"),
    "faiss-flat-int8": lambda tmp: make_index("faiss", D, ann_threshold=None, storage="int8"),
    "faiss-hnsw-int8": lambda tmp: make_index("faiss", D, force="hnsw", ef_search=64, storage="int8"),
    "faiss-ivf-int8": lambda tmp: make_index(
        "faiss", D, ann_threshold=60, ann="ivf", nlist=8, nprobe=8, storage="int8"
    ),
    # two-stage (PCA + 4-bit PQ fast-scan, re-ranked by the stored codes; the default approximate kind): with
    # fewer vectors than re-ranked candidates every vector is re-ranked, so the answers are the codes' exact ones
    "faiss-pq": lambda tmp: make_index("faiss", D, ann_threshold=60),
    "faiss-pq-int8": lambda tmp: make_index("faiss", D, ann_threshold=60, storage="int8"),
    "milvus": milvus_index,
}
#: Exact scans over quantized codes: the right vectors, scores within the codes' rounding of the true cosine.
QUANTIZED = {"faiss-flat-float16": 2e-3, "faiss-flat-int8": 0.02, "faiss-ivf-int8": 0.02, "faiss-pq-int8": 0.02}
EXACT = {
    "numpy",
    "faiss-flat",
    "faiss-flat-native",
    "faiss-ivf",
    "faiss-pq",
    "milvus",
    "milvus-server",
}  # IVF with nprobe == nlist visits every cell


@pytest.mark.parametrize("name", list(FACTORIES))
def test_backend_matches_brute_force_through_updates(name: str, tmp_path: Path) -> None:
    if name.startswith("faiss") and not HAS_FAISS:
        pytest.skip("faiss-cpu is not installed")
    run_contract(name, FACTORIES[name](tmp_path))


def run_contract(name: str, index: VectorIndex) -> None:
    """The backend contract: random upserts, replacements and removals, each followed by searches that must
    agree with brute force (exactly for exact backends), then reset. ``name`` selects the tolerance."""
    ref = Reference()
    rng = np.random.default_rng(7)
    assert len(index) == 0
    sims, ids = index.search(unit(rng.standard_normal((2, D))), 3)
    assert (ids == -1).all() and np.isneginf(sims).all()
    next_id = 0
    steps = 4 if name.startswith("milvus") else 8
    for _step in range(steps):
        n_new = int(rng.integers(10, 30))
        new_ids = np.arange(next_id, next_id + n_new, dtype=np.int64)
        next_id += n_new
        live = np.array(sorted(ref.vecs), np.int64)
        upd = rng.choice(live, size=min(5, live.size), replace=False) if live.size else live[:0]
        batch_ids = np.concatenate([new_ids, upd])
        x = unit(rng.standard_normal((batch_ids.size, D)))
        index.upsert(batch_ids, x)
        ref.upsert(batch_ids, x)
        live = np.array(sorted(ref.vecs), np.int64)
        gone = rng.choice(live, size=min(7, live.size // 4), replace=False)
        index.remove(np.concatenate([gone, [10**9]]))  # unknown ids are ignored
        ref.remove(gone)
        assert len(index) == len(ref.vecs)
        q = unit(rng.standard_normal((6, D)))
        k = 5
        got_s, got_i = index.search(q, k)
        want_s, want_i = ref.search(q, k)
        assert got_s.shape == (6, k) and got_i.dtype == np.int64
        if name in EXACT:
            np.testing.assert_array_equal(got_i, want_i)
            np.testing.assert_allclose(got_s, want_s, atol=1e-5)
        elif name in QUANTIZED:
            tol = QUANTIZED[name]
            assert set(np.unique(got_i)) <= set(ref.vecs)
            true = np.array([[q[r] @ ref.vecs[int(i)] for i in row] for r, row in enumerate(got_i)])
            np.testing.assert_allclose(got_s, true, atol=tol)  # each score is its vector's cosine, rounded
            np.testing.assert_allclose(got_s, want_s, atol=tol)  # and the k best are found, up to near ties
        else:
            assert set(np.unique(got_i)) <= set(ref.vecs)  # never a removed or replaced vector
            assert (got_i[:, 0] == want_i[:, 0]).mean() >= 0.8
        # a stored vector finds itself with similarity 1
        probe = np.array(sorted(ref.vecs)[:3], np.int64)
        s1, i1 = index.search(np.stack([ref.vecs[int(i)] for i in probe]), 1)
        np.testing.assert_array_equal(i1[:, 0], probe)
        np.testing.assert_allclose(s1[:, 0], 1.0, atol=QUANTIZED.get(name, 0.02 if "int8" in name else 1e-5))
    if name in ("faiss-ivf", "faiss-pq", "faiss-pq-int8"):
        assert index.mode == name.split("-")[1]  # crossed ann_threshold=60 during the updates
    index.reset()
    assert len(index) == 0 and (index.search(q, 2)[1] == -1).all()
    index.close()


@needs_faiss
def test_faiss_switches_to_ann_above_threshold_and_rebuilds_after_deletes() -> None:
    rng = np.random.default_rng(3)
    index = make_index("faiss", D, ann_threshold=100, ann="hnsw")
    x = unit(rng.standard_normal((150, D)))
    index.upsert(np.arange(99), x[:99])
    assert index.mode == "flat"
    index.upsert(np.arange(99, 150), x[99:])
    assert index.mode == "hnsw" and len(index) == 150
    _, ids = index.search(x[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95
    index.remove(np.arange(0, 60))  # > 1/4 dead: rebuilt from the live vectors, back to exact
    assert index.mode == "flat" and len(index) == 90
    s, ids = index.search(x[60:150], 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(60, 150))


@needs_faiss
def test_int8_and_float16_storage_on_face_statistics(shared_data: Path) -> None:
    """Quantized storage on vectors with the statistics of real w600k_mbf templates: 4x / 2x fewer bytes, and
    identification decisions at the calibrated threshold as exact float32 search makes them."""
    from arcface.gallery.synthetic import FaceStatistics, identities, photos

    stats = FaceStatistics.load(shared_data / "embedding_stats.npz")
    rng = np.random.default_rng(0)
    centres = identities(stats, 20_000, rng)
    gallery = photos(stats, centres, rng)
    probes = np.concatenate([photos(stats, centres[:300], rng), photos(stats, identities(stats, 300, rng), rng)])
    ids = np.arange(len(gallery), dtype=np.int64)
    exact = make_index("faiss", gallery.shape[1], ann_threshold=None)
    exact.upsert(ids, gallery)
    want_s, want_i = exact.search(probes, 2)
    from arcface.thresholds import package_thresholds_path, read_thresholds_file

    threshold = next(e["threshold"] for e in read_thresholds_file(package_thresholds_path()).values())  # default pack
    decision = np.where(want_s[:, 0] >= threshold, want_i[:, 0], -1)
    sizes = {}
    for storage, tol in (("float16", 1e-3), ("int8", 4e-3)):
        index = make_index("faiss", gallery.shape[1], ann_threshold=None, storage=storage)
        index.upsert(ids, gallery)
        sizes[storage] = index._index.sa_code_size()
        got_s, got_i = index.search(probes, 1)
        true = np.sum(probes * gallery[got_i[:, 0]], axis=1)
        assert np.abs(got_s[:, 0] - true).max() <= tol
        changed = np.where(got_s[:, 0] >= threshold, got_i[:, 0], -1) != decision
        # measured: float16 0, int8 4 of 600; each a near tie (top two within the rounding) or at the threshold
        assert changed.mean() <= 0.01, (storage, changed.sum())
        near = (np.abs(want_s[:, 0] - threshold) <= 2 * tol) | (want_s[:, 0] - want_s[:, 1] <= 2 * tol)
        assert near[changed].all()
    assert sizes == {"float16": 2 * 512, "int8": 512}


@needs_faiss
def test_two_stage_search_keeps_the_exact_identifications_on_face_statistics(shared_data: Path) -> None:
    """The two-stage index (PCA + 4-bit PQ fast-scan, re-ranked by int8 codes) on templates with the statistics
    of real faces: the exact float32 top-1 of genuine probes is kept, removed people are never returned (also
    past the rebuild), and its codes take 32 bytes plus the 512 of the re-ranking int8 codes."""
    from arcface.gallery.backends.faiss_index import PQ_MAX_DEAD, FaissIndex
    from arcface.gallery.synthetic import FaceStatistics, identities, photos

    stats = FaceStatistics.load(shared_data / "embedding_stats.npz")
    rng = np.random.default_rng(1)
    centres = identities(stats, 30_000, rng)
    gallery = photos(stats, centres, rng)
    probes = photos(stats, centres[:400], rng)
    ids = np.arange(len(gallery), dtype=np.int64)
    exact = make_index("faiss", gallery.shape[1], ann_threshold=None)
    exact.upsert(ids, gallery)
    want = exact.search(probes, 1)[1][:, 0]
    index = FaissIndex(gallery.shape[1], ann_threshold=10_000, storage="int8")
    index.upsert(ids, gallery)
    assert index.mode == "pq"
    assert index._index.sa_code_size() == 32 + 512
    got_s, got_i = index.search(probes, 3)
    assert (got_i[:, 0] == want).mean() >= 0.995
    true = np.sum(probes * gallery[got_i[:, 0]], axis=1)
    assert np.abs(got_s[:, 0] - true).max() <= 4e-3  # re-ranked with the int8 codes' similarities
    # remove people found as top-1: never returned again; past PQ_MAX_DEAD removals the index is rebuilt
    gone = np.unique(got_i[:100, 0])
    index.remove(gone)
    s, i = index.search(probes[:100], 3)
    assert not np.isin(i, gone).any() and index._dead == len(gone)
    more = np.setdiff1d(np.arange(20_000, 20_000 + PQ_MAX_DEAD), gone)
    index.remove(more)
    assert index._dead == 0 and index.mode == "pq" and len(index) == len(gallery) - len(gone) - len(more)
    s, i = index.search(probes, 1)
    assert not np.isin(i, np.concatenate([gone, more])).any()
    alive = ~np.isin(want, np.concatenate([gone, more]))
    assert (i[alive, 0] == want[alive]).mean() >= 0.99


@needs_faiss
@pytest.mark.parametrize("storage", ["int8", "float16"])
def test_split_exact_scan_equals_the_single_threaded_one(storage: str) -> None:
    """Codes striped over two shards scanned by two threads (partial top-k lists merged) return what one index in
    one thread returns, removed entries included; a batch of queries scans the shards in the calling thread."""
    from arcface.gallery.backends.faiss_index import SPLIT_MIN, FaissIndex

    rng = np.random.default_rng(2)
    n = 2 * SPLIT_MIN + 1_000
    x = unit(rng.standard_normal((n, D)))
    one, two = (FaissIndex(D, storage=storage, search_threads=t) for t in (1, 2))
    for index in (one, two):
        index.upsert(np.arange(n), x)
        index.remove(np.arange(0, n, 20))  # dead entries in both ranges (kept in place: fewer than 4096)
    assert one._dead == two._dead > 0
    q = np.concatenate([x[[3, n // 2 + 5, n - 2]], unit(rng.standard_normal((1, D)))])
    for row in q:
        s1, i1 = one.search(row[None], 5)
        s2, i2 = two.search(row[None], 5)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
        assert not np.isin(i2, np.arange(0, n, 20)).any()
    assert two._pool is not None and one._pool is None  # two threads used
    assert [s.ntotal for s in two._index.shards] == [(n + 1) // 2, n // 2]  # striped: balanced
    s1, i1 = one.search(q, 5)  # a batch: FAISS spreads the queries itself
    s2, i2 = two.search(q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    two.close()
    assert two._pool is None


def test_bad_backend_arguments() -> None:
    with pytest.raises(InputError, match="unknown gallery backend"):
        make_index("annoy", D)
    with pytest.raises(InputError, match="expected shape"):
        make_index("numpy", D).upsert(np.arange(2), np.ones((2, D + 1)))
    with pytest.raises(InputError, match="duplicates"):
        make_index("numpy", D).upsert(np.array([1, 1]), np.ones((2, D)))
    with pytest.raises(InputError, match="uri"):
        make_index("milvus", D)
    if HAS_FAISS:
        with pytest.raises(InputError, match="storage must be one of float32, float16, int8"):
            make_index("faiss", D, storage="int4")


@pytest.mark.parametrize("backend", ["numpy", "faiss", "milvus"])
def test_gallery_on_each_backend_survives_reopen(backend: str, tmp_path: Path) -> None:
    if backend == "faiss" and not HAS_FAISS:
        pytest.skip("faiss-cpu is not installed")
    if backend == "milvus" and not HAS_MILVUS:
        pytest.skip("pymilvus/milvus-lite are not installed")
    rng = np.random.default_rng(11)
    centres = unit(rng.standard_normal((12, D)))
    db = tmp_path / "g"
    try:
        g = Gallery(db, backend=backend, threshold=0.5)
    except DependencyError as exc:
        pytest.skip(f"{backend} does not work here: {exc}")
    g.enroll_many({f"p{i}": unit(c + 0.1 * rng.standard_normal((2, D))) for i, c in enumerate(centres)})
    g.rename("p0", "zero")
    g.remove("p1")
    g.enroll("p2", unit(rng.standard_normal(D)), replace=True)  # template changes: index updated
    g.close()
    h = Gallery(db, backend=backend, threshold=0.5)  # index rebuilt from the gallery files
    res = h.search_batch(centres)
    assert [r.identity for r in res] == ["zero", "unknown", "unknown"] + [f"p{i}" for i in range(3, 12)]
    assert len(h.index) == 11
    h.close()


@needs_faiss
def test_faiss_index_cache_is_used_only_for_the_state_it_reflects(tmp_path: Path, monkeypatch) -> None:
    from arcface.gallery.backends.faiss_index import FaissIndex
    from arcface.gallery.gallery import INDEX_CACHE

    builds: list[int] = []
    real_build = FaissIndex._build
    monkeypatch.setattr(
        FaissIndex, "_build", lambda self, ids, vecs: builds.append(len(ids)) or real_build(self, ids, vecs)
    )
    rng = np.random.default_rng(5)
    x = unit(rng.standard_normal((80, D)))
    db = tmp_path / "g"
    opts = {"backend": "faiss", "backend_options": {"ann_threshold": 50, "ann": "hnsw"}, "index_cache_min": 10}
    g = Gallery(db, **opts)
    g.enroll_many({f"p{i}": x[i] for i in range(70)})
    assert g.index.mode == "hnsw" and builds == [70]
    g.close()
    assert (db / INDEX_CACHE).exists()

    h = Gallery(db, **opts)  # same state: loaded, not rebuilt
    assert builds == [70] and h.index.mode == "hnsw" and len(h.index) == 70
    assert [r.identity for r in h.search_batch(x[:70], threshold=0.9)] == [f"p{i}" for i in range(70)]
    h.enroll("late", x[75])  # another handle changes the gallery...
    other = Gallery(db, **opts)  # ...while the cache on disk is stale: rebuilt from the files
    assert builds[-1] == 71 and other.search(x[75], threshold=0.9).identity == "late"
    (db / INDEX_CACHE).write_bytes(b"garbage")
    Gallery(db, **opts)  # an unreadable cache is ignored
    assert builds[-1] == 71 and len(builds) == 3


@needs_faiss
def test_exact_int8_scan_integer_codes_and_an_older_cache_format(tmp_path: Path) -> None:
    """The exact int8 scan keeps integer codes of step r/127 and rounds the query onto them: its similarities are
    the codes' inner products (to float rounding), one thread and the split scan agree, removed entries never
    come back, and a cache file of the earlier (decoded-range) int8 format is refused, so the gallery rebuilds it."""
    import faiss

    from arcface.gallery.backends.faiss_index import FaissIndex, int8_range

    rng = np.random.default_rng(3)
    x = rng.standard_normal((60_000, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:5] + 0.05 * rng.standard_normal((5, 512)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = np.arange(len(x), dtype=np.int64) + 1000
    split = FaissIndex(512, force="flat", storage="int8", search_threads=2)
    one = FaissIndex(512, force="flat", storage="int8", search_threads=1)
    for index in (split, one):
        index.upsert(ids, x)
    step = int8_range(512) / 127
    codes, qc = np.clip(np.rint(x / step), -127, 127), np.clip(np.rint(q / step), -127, 127)
    want = (qc @ codes.T) * step * step  # what the integer codes say
    s1, i1 = one.search(q, 5)
    s2, i2 = split.search(q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    np.testing.assert_allclose(s1, np.take_along_axis(want, i1 - 1000, 1), atol=1e-5)
    assert (i1[:, 0] == ids[:5]).all() and np.abs(s1[:, 0] - np.sum(q * x[:5], 1)).max() < 4e-3
    # the stored vectors come back on the grid (a rebuild keeps them)
    live_ids, live = one._live()
    np.testing.assert_allclose(live, codes * step, atol=1e-6)
    split.remove(ids[:2])
    assert not set(split.search(q, 5)[1].ravel()) & set(ids[:2].tolist())
    # the cache: this format loads; the earlier one (uniform codes over [-r, r]) does not
    one.save(tmp_path / "ok.npz", "k")
    assert FaissIndex(512, force="flat", storage="int8").load(tmp_path / "ok.npz", "k")
    old = faiss.IndexScalarQuantizer(512, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT)
    r = int8_range(512)
    old.train(np.array([[-r] * 512, [r] * 512], np.float32))
    old.add(x)
    one._index = old
    one.save(tmp_path / "old.npz", "k")
    fresh = FaissIndex(512, force="flat", storage="int8")
    assert not fresh.load(tmp_path / "old.npz", "k") and len(fresh) == 0


@needs_faiss
@pytest.mark.parametrize("storage", ["int8", "float16"])
def test_striped_codes_survive_appends_removals_and_a_cache_round_trip(
    storage: str, tmp_path: Path, monkeypatch
) -> None:
    """Appends of odd sizes (int8: rounded in chunks of 97, so chunks start on every shard) keep position p in shard
    p % S (so ids map back without a table), removals are honoured per shard, the cache reloads into another
    thread count, and a cache whose shard sizes are not those of striped positions (a damaged or hand-made file)
    is refused, so the gallery rebuilds it."""
    import faiss

    from arcface.gallery.backends import faiss_index
    from arcface.gallery.backends.faiss_index import FaissIndex

    monkeypatch.setattr(faiss_index, "ADD_CHUNK", 97)

    rng = np.random.default_rng(7)
    x = unit(rng.standard_normal((1_000, D)))
    three = FaissIndex(D, force="flat", storage=storage, search_threads=3)
    start = 0
    for size in (1, 2, 7, 290, 700):  # appends that start on every shard
        three.upsert(np.arange(start, start + size), x[start : start + size])
        start += size
    assert [s.ntotal for s in three._index.shards] == [334, 333, 333]
    _, live = three._live()
    assert np.abs(live - x).max() < 4e-3  # every vector came back at its own position
    three.remove(np.arange(0, 1_000, 4))  # dead entries in every shard (positions 0, 4, 8, ... mod 3)
    s3, i3 = three.search(x[:40], 4)
    assert not set(range(0, 1_000, 4)) & set(i3.ravel().tolist())
    kept = np.arange(40) % 4 != 0
    assert (i3[kept, 0] == np.arange(40)[kept]).all()  # each live vector finds itself first
    three.save(tmp_path / "striped.npz", "k")
    one = FaissIndex(D, force="flat", storage=storage, search_threads=1)
    assert one.load(tmp_path / "striped.npz", "k") and len(one._index.shards) == 3 and len(one) == len(three)
    s1, i1 = one.search(x[:40], 4)
    np.testing.assert_array_equal(i1, i3)
    np.testing.assert_array_equal(s1, s3)
    # a file whose shards hold 500 + 250 + 250 vectors cannot be striped positions: refused, index unchanged
    with np.load(tmp_path / "striped.npz") as z:
        parts = {f: z[f] for f in z.files}
    shards = [faiss.deserialize_index(parts[f"shard{i}"]) for i in range(3)]
    qtype = faiss.downcast_index(shards[0]).sq.qtype
    bad = [faiss.IndexScalarQuantizer(D, qtype, faiss.METRIC_INNER_PRODUCT) for _ in range(3)]
    for index, part in zip(bad, (x[:500], x[500:750], x[750:])):
        index.add(part if storage == "float16" else np.rint(part * 50))
    parts.update({f"shard{i}": faiss.serialize_index(b) for i, b in enumerate(bad)})
    np.savez(tmp_path / "bad.npz", **parts)
    fresh = FaissIndex(D, force="flat", storage=storage)
    assert not fresh.load(tmp_path / "bad.npz", "k") and len(fresh) == 0
