"""FAISS backend: exact scans for small galleries; above a size threshold a two-stage search (``"pq"``, the
default approximate kind), IVF or HNSW.

The two-stage search (``ann="pq"``): every vector is projected by PCA to :data:`PQ_DIMS` dimensions and coded
by a 4-bit product quantizer searched with FAISS's SIMD fast-scan (32 bytes per vector); the best
``k * refine_factor`` candidates are re-ranked with the vectors' own codes (``storage``: int8, float16 or float32)
and returned with those similarities. On templates with the statistics of real faces it keeps the exact top-1
(recall@1 0.997 against exact float32 at 1M with float16 re-ranking, 0.993 with int8, every identification kept;
p50 about 2 ms on 2 cores; benchmarks/bench_gallery.py), where IVF and HNSW lose a third of the identifications.
It is the default above :data:`DEFAULT_ANN_THRESHOLD` vectors.

Vectors are stored as float32 (default), or, with ``storage="float16"`` / ``"int8"``, as 2 / 1 bytes per
component (FAISS scalar quantizers): 2x / 4x the capacity in the same memory, and an exact scan that reads
2x / 4x fewer bytes. int8 codes are uniform over ``[-r, r]`` with ``r =`` :func:`int8_range` ``(dim)`` (about 6.8
standard deviations of a unit vector's component: 0.30 for 512-d), the same for every gallery, so no training
and no drift; a cosine moves by at most about 0.002 (``benchmarks/bench_gallery.py`` measures the decisions
changed). The exact int8 scan stores the codes as integers of step ``r / 127`` (FAISS's ``QT_8bit_direct_signed``)
and rounds the query to the same step: FAISS then multiplies integers instead of decoding every code to float,
similarities are scaled back to cosines. Flat float16 and int8 codes are striped over one sub-index per search
thread (:class:`~arcface.gallery.backends.faiss_striped.StripedIndex`), so one query's exact scan runs on every
core (``benchmarks/bench_gallery.py --interleaved`` measures it against the numpy scan).

Vectors live in FAISS at consecutive internal positions; a position -> id table maps them back to
gallery ids. Removing or replacing a vector marks its position dead in a bitmap that searches pass to
FAISS as an ``IDSelectorBitmap`` (so dead vectors are never returned, with no over-fetching); the index
is rebuilt from its live vectors when dead ones pass a quarter of it. Inner product equals cosine
similarity because every vector is unit-norm.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from arcface.errors import InputError, require
from arcface.gallery.backends.base import check_ids, check_vectors, empty_result, top_k
from arcface.gallery.backends.faiss_striped import StripedIndex

AnnKind = Literal["pq", "hnsw", "ivf"]
ANN_KINDS = ("pq", "hnsw", "ivf")
Storage = Literal["float32", "float16", "int8"]
STORAGES = ("float32", "float16", "int8")


#: Gallery size from which the default index is the two-stage search instead of an exact scan.
DEFAULT_ANN_THRESHOLD = 250_000
#: Fewest vectors per thread for a threaded exact scan of striped codes (below it the shards are scanned one
#: after the other in the calling thread).
SPLIT_MIN = 25_000
#: Vectors rounded to integer codes per call (the rounded float32 copy of a whole 1M gallery would take 2 GB).
ADD_CHUNK = 65_536
#: Two-stage search: PCA output dimensions (coded by 4-bit PQ sub-quantizers of 2 dims each), candidates re-ranked
#: per result, and the training sample (PCA + PQ codebooks).
PQ_DIMS, REFINE_FACTOR, PQ_TRAIN = 128, 128, 100_000
#: Removed entries tolerated by a two-stage index before it is rebuilt (fast-scan takes no id filter: searches
#: fetch ``k`` plus this many and drop the dead ones).
PQ_MAX_DEAD = 256


def int8_range(dim: int) -> float:
    """Half-width ``r`` of the int8 code range ``[-r, r]`` for unit vectors of length ``dim``."""
    return min(1.0, 6.8 / math.sqrt(dim))


class FaissIndex:
    """Top-k inner-product search with FAISS.

    Args:
        dim: vector length.
        ann_threshold: at this many live vectors or more the index becomes approximate (``ann``); below it,
            exact. Default :data:`DEFAULT_ANN_THRESHOLD` (250,000): below it an exact scan answers in a few ms
            (float32 numpy 10 ms at 200k, int8 codes 3 ms); above it the two-stage search keeps the exact top-1
            (recall@1 0.997-1.000 at 1M) at about 2 ms. ``None``: exact at any size. IVF and HNSW lose a third
            of the identifications on templates with the statistics of real faces (benchmarks/bench_gallery.py).
        ann: ``"pq"`` (default: PCA + 4-bit PQ fast-scan, re-ranked with the stored codes; trained on the
            gallery's vectors when it passes ``ann_threshold``), ``"ivf"`` (``IndexIVFFlat``/
            ``IndexIVFScalarQuantizer``: k-means trained) or ``"hnsw"`` (``IndexHNSWFlat``/``IndexHNSWSQ``: no
            training, slow to build).
        refine_factor: two-stage search: candidates re-ranked per requested result.
        hnsw_m, ef_construction, ef_search: HNSW graph degree and beam widths.
        nlist, nprobe: IVF cell count (``None``: ``4 * sqrt(N)``) and cells visited per query.
        force: ``"flat"``, ``"pq"``, ``"hnsw"`` or ``"ivf"`` to pin the index type regardless of size.
        exact_search: how the exact (flat) index is searched: ``"numpy"`` (default) multiplies the
            queries with a zero-copy numpy view of the ``IndexFlatIP`` storage (one BLAS matrix product,
            measured 2-4x faster than ``IndexFlatIP.search`` here, see benchmarks/bench_gallery.py),
            ``"faiss"`` calls ``IndexFlatIP.search``. Results are the same. Only for float32 storage.
        storage: ``"float32"`` (default), ``"float16"`` or ``"int8"`` codes for every index type (flat:
            ``IndexScalarQuantizer``; HNSW: ``IndexHNSWSQ``; IVF: ``IndexIVFScalarQuantizer``).
        search_threads: flat float16 / int8 codes are striped over this many sub-indexes, scanned by as many
            threads when a search has fewer queries than threads and at least :data:`SPLIT_MIN` vectors per
            thread (FAISS already spreads larger batches over queries); the partial top-k lists are merged, so
            results equal one scan's. ``None``: the usable cores.
    """

    kind = "faiss"

    def __init__(
        self,
        dim: int,
        ann_threshold: int | None = DEFAULT_ANN_THRESHOLD,
        ann: AnnKind = "pq",
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 32,
        force: Literal["flat", "hnsw", "ivf"] | None = None,
        exact_search: Literal["numpy", "faiss"] = "numpy",
        storage: Storage = "float32",
        search_threads: int | None = None,
        refine_factor: int = REFINE_FACTOR,
    ) -> None:
        self._faiss = require("faiss", "gallery")
        if ann not in ANN_KINDS:
            raise InputError(f"faiss backend: ann must be one of {', '.join(ANN_KINDS)}, got {ann!r}")
        if force not in (None, "flat", *ANN_KINDS):
            raise InputError(f"faiss backend: force must be 'flat' or one of {', '.join(ANN_KINDS)}, got {force!r}")
        self.refine_factor = max(1, int(refine_factor))
        self.dim = int(dim)
        self.ann_threshold = ann_threshold
        self.ann: AnnKind = ann
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nlist, self.nprobe = nlist, nprobe
        if exact_search not in ("numpy", "faiss"):
            raise InputError(f"faiss backend: exact_search must be 'numpy' or 'faiss', got {exact_search!r}")
        if storage not in STORAGES:
            raise InputError(f"faiss backend: storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self.force = force
        self.exact_search = exact_search
        self.storage: Storage = storage
        if not search_threads:
            from arcface.runtime.cpu import usable_cores  # imported here: plain galleries need no model engine

            search_threads = usable_cores()
        self.search_threads = max(1, int(search_threads))
        self._pool: ThreadPoolExecutor | None = None
        self.reset()

    # ------------------------------------------------------------------ structure
    @property
    def mode(self) -> str:
        """The current index type: ``"flat"``, ``"pq"``, ``"hnsw"`` or ``"ivf"``."""
        return self._mode

    def _want_mode(self, n_live: int) -> str:
        if self.force:
            return self.force
        if self.ann_threshold is not None and n_live >= self.ann_threshold:
            return self.ann
        return "flat"

    def _quantizer_type(self):
        sq = self._faiss.ScalarQuantizer
        return {"float16": sq.QT_fp16, "int8": sq.QT_8bit_uniform}[self.storage]

    def _fixed_range(self, index) -> None:
        """Train an int8 index's code range on ``[-r, r]`` (independent of the data); float16 needs none."""
        if self.storage == "int8":
            r = int8_range(self.dim)
            index.train(np.array([[-r] * self.dim, [r] * self.dim], np.float32))

    def _integer_codes(self) -> bool:
        """The exact int8 scan: codes are integers of step :meth:`_step` (``QT_8bit_direct_signed``)."""
        return self._mode == "flat" and self.storage == "int8"

    def _step(self) -> float:
        """Value of one integer code step (1.0 where vectors are stored as values)."""
        return int8_range(self.dim) / 127.0 if self._integer_codes() else 1.0

    def _add(self, x: np.ndarray) -> None:
        if not self._integer_codes():
            self._index.add(x)
            return
        step = self._step()
        for i in range(0, len(x), ADD_CHUNK):  # round to the code grid here (FAISS would truncate), chunk by chunk
            self._index.add(np.clip(np.rint(x[i : i + ADD_CHUNK] / step), -127, 127).astype(np.float32))

    def _same_kind(self, a, b) -> bool:
        """Whether two flat indexes store vectors the same way (striping, class and, for scalar quantizers,
        code type)."""
        if isinstance(a, StripedIndex) or isinstance(b, StripedIndex):
            if not (isinstance(a, StripedIndex) and isinstance(b, StripedIndex)):
                return False
            a, b = a.shards[0], b.shards[0]
        a, b = self._faiss.downcast_index(a), self._faiss.downcast_index(b)
        return type(a) is type(b) and getattr(getattr(a, "sq", None), "qtype", None) == getattr(
            getattr(b, "sq", None), "qtype", None
        )

    def _new_index(self, mode: str, train: np.ndarray | None):
        faiss = self._faiss
        ip = faiss.METRIC_INNER_PRODUCT
        if mode == "flat":
            if self.storage == "float32":
                return faiss.IndexFlatIP(self.dim)
            # int8: integer codes (see the module docstring), no range to train; float16 needs none either
            qtype = faiss.ScalarQuantizer.QT_8bit_direct_signed if self.storage == "int8" else self._quantizer_type()
            return StripedIndex([faiss.IndexScalarQuantizer(self.dim, qtype, ip) for _ in range(self.search_threads)])
        if mode == "pq":
            return self._new_pq_index(train)
        if mode == "hnsw":
            if self.storage == "float32":
                index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, ip)
            else:
                index = faiss.IndexHNSWSQ(self.dim, self._quantizer_type(), self.hnsw_m, ip)
                self._fixed_range(index)
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
            return index
        n = 0 if train is None else train.shape[0]
        nlist = self.nlist or int(min(65536, max(1, 4 * math.sqrt(max(n, 1)))))
        nlist = max(1, min(nlist, n)) if n else nlist
        quantizer = faiss.IndexFlatIP(self.dim)
        if self.storage == "float32":
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, ip)
        else:  # the vectors themselves (not residuals), in the same fixed code range as flat and HNSW
            index = faiss.IndexIVFScalarQuantizer(quantizer, self.dim, nlist, self._quantizer_type(), ip, False)
        self._quantizer = quantizer  # keep the quantizer alive as long as the index
        if train is not None and n:
            sample = train
            if n > 64 * nlist:  # k-means needs ~40-256 points per cell; more only costs time
                rng = np.random.default_rng(0)
                sample = train[np.sort(rng.choice(n, 64 * nlist, replace=False))]
            index.train(sample)
            if self.storage == "int8":  # the cells come from the sample; the code range does not
                r = int8_range(self.dim)
                faiss.copy_array_to_vector(np.array([-r, 2 * r], np.float32), index.sq.trained)
        index.nprobe = min(self.nprobe, nlist)
        index.make_direct_map()
        return index

    def _new_pq_index(self, train: np.ndarray | None):
        """PCA -> 4-bit PQ fast-scan, re-ranked by the stored codes (trained on ``train``, or untrained)."""
        faiss = self._faiss
        dims = min(PQ_DIMS, self.dim - self.dim % 2)
        refine = {"float32": "RFlat", "float16": "Refine(SQfp16)", "int8": "Refine(SQ8)"}[self.storage]
        index = faiss.index_factory(self.dim, f"PCA{dims},PQ{dims // 2}x4fs,{refine}", faiss.METRIC_INNER_PRODUCT)
        if train is not None and len(train):
            sample = train
            if len(train) > PQ_TRAIN:
                rng = np.random.default_rng(0)
                sample = train[np.sort(rng.choice(len(train), PQ_TRAIN, replace=False))]
            index.train(sample)
            # the re-ranking codes take the same fixed range as the flat and HNSW int8 indexes, not the sample's
            self._fixed_range(faiss.downcast_index(index.refine_index))
        return index

    def reset(self) -> None:
        self._mode = self._want_mode(0) if self.force else "flat"
        self._index = self._new_index(self._mode, None) if self._mode not in ("ivf", "pq") else None
        self._labels = np.zeros(0, np.int64)  # position -> id
        self._alive = np.zeros(0, bool)
        self._pos: dict[int, int] = {}
        self._ntotal = 0
        self._dead = 0
        self._selector = None

    def __len__(self) -> int:
        return self._ntotal - self._dead

    def _live(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live entry."""
        if self._ntotal == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        vecs = self._index.reconstruct_n(0, self._ntotal)
        if self._integer_codes():
            vecs *= self._step()  # in place: a float32 gallery's copy would double its memory
        alive = self._alive[: self._ntotal]
        return self._labels[: self._ntotal][alive].copy(), np.ascontiguousarray(vecs[alive])

    def rebuild(self) -> None:
        """Rebuild from the live vectors, choosing the index type for their count (drops dead ones)."""
        ids, vecs = self._live()
        self._build(ids, vecs)

    def _build(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        mode = self._want_mode(len(ids))
        self._index = self._new_index(mode, vecs if mode in ("ivf", "pq") else None)
        self._mode = mode
        self._labels = ids.copy()
        self._alive = np.ones(len(ids), bool)
        self._pos = {int(i): p for p, i in enumerate(ids.tolist())}
        self._ntotal, self._dead, self._selector = len(ids), 0, None
        if len(ids):
            self._add(vecs)

    # ------------------------------------------------------------------ persistence (a cache)
    def save(self, path: str | Path, key: str) -> None:
        """Write the index, its id table and ``key`` (what state it reflects) atomically to ``path``."""
        from arcface.gallery.fileio import atomic_write_bytes

        buf = io.BytesIO()
        index, shards = self._index, {}
        if isinstance(index, StripedIndex):  # one serialized sub-index per shard, in shard order
            shards = {f"shard{i}": self._faiss.serialize_index(s) for i, s in enumerate(index.shards)}
            index = None
        np.savez(
            buf,
            key=np.frombuffer(key.encode("utf-8"), np.uint8),
            mode=np.frombuffer(self._mode.encode("ascii"), np.uint8),
            index=self._faiss.serialize_index(index) if index is not None else np.zeros(0, np.uint8),
            labels=self._labels[: self._ntotal],
            alive=self._alive[: self._ntotal],
            **shards,
        )
        atomic_write_bytes(path, buf.getvalue())

    def load(self, path: str | Path, key: str) -> bool:
        """Load what :meth:`save` wrote if its key equals ``key``; ``False`` (index unchanged) otherwise."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if bytes(z["key"]).decode("utf-8") != key:
                    return False
                mode = bytes(z["mode"]).decode("ascii")
                raw, labels, alive = z["index"], z["labels"], z["alive"]
                shards = [z[f"shard{i}"] for i in range(sum(f.startswith("shard") for f in z.files))]
            index = self._faiss.deserialize_index(raw) if raw.size else None
            if shards:
                index = StripedIndex([self._faiss.deserialize_index(s) for s in shards])
                if not index.striped() or not all(self._same_kind(s, index.shards[0]) for s in index.shards):
                    return False
        except (OSError, ValueError, KeyError, RuntimeError):
            return False
        if index is None or index.d != self.dim or index.ntotal != labels.size:
            return False
        if mode == "flat" and not self._same_kind(index, self._new_index("flat", None)):
            return False  # another storage, or int8 codes of an earlier format: rebuilt from the gallery
        self._index, self._mode = index, mode
        if mode == "hnsw":
            index.hnsw.efSearch = self.ef_search
        self._labels, self._alive = labels.astype(np.int64), alive.astype(bool)
        self._ntotal = int(labels.size)
        self._dead = int(self._ntotal - alive.sum())
        self._pos = {int(i): p for p, i in enumerate(labels.tolist()) if alive[p]}
        self._selector = None
        return True

    # ------------------------------------------------------------------ updates
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        x = check_vectors(vectors, self.dim)
        ids = check_ids(ids, x.shape[0])
        if not len(ids):
            return
        self._kill(ids)
        n_after = len(self) + len(ids)
        if self._index is None or (self._mode == "flat" and self._want_mode(n_after) != "flat"):
            old_ids, old_vecs = self._live()
            self._build(np.concatenate([old_ids, ids]), np.concatenate([old_vecs, x]))
            return
        start = self._ntotal
        self._add(x)
        self._labels = np.concatenate([self._labels[:start], ids])
        self._alive = np.concatenate([self._alive[:start], np.ones(len(ids), bool)])
        for p, i in enumerate(ids.tolist()):
            self._pos[i] = start + p
        self._ntotal += len(ids)
        self._selector = None
        self._maybe_rebuild()

    def remove(self, ids: np.ndarray) -> None:
        self._kill(np.asarray(ids, np.int64).reshape(-1))
        self._maybe_rebuild()

    def _kill(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            pos = self._pos.pop(int(i), None)
            if pos is not None:
                self._alive[pos] = False
                self._dead += 1
                self._selector = None

    def _maybe_rebuild(self) -> None:
        many = {"flat": 4096, "pq": PQ_MAX_DEAD}.get(self._mode)
        if self._dead and (self._dead * 4 > self._ntotal or (many is not None and self._dead > many)):
            self.rebuild()

    # ------------------------------------------------------------------ search
    def _striped_params(self) -> list | None:
        """Per-shard search parameters of a striped index: each shard's dead-entry bitmap, or ``None``."""
        if not self._dead:
            return None
        faiss = self._faiss
        if self._selector is None:
            bitmaps = self._index.alive_bitmaps(self._alive[: self._ntotal])
            shards = self._index.shards
            sels = [faiss.IDSelectorBitmap(int(s.ntotal), faiss.swig_ptr(b)) for s, b in zip(shards, bitmaps)]
            self._selector = (bitmaps, sels, [faiss.SearchParameters(sel=sel) for sel in sels])
        return self._selector[2]

    def _params(self, k: int):
        faiss = self._faiss
        kw = {}
        if self._dead:
            if self._selector is None:
                bits = np.packbits(self._alive[: self._ntotal], bitorder="little")
                self._selector = (bits, faiss.IDSelectorBitmap(self._ntotal, faiss.swig_ptr(bits)))
            kw["sel"] = self._selector[1]
        if self._mode == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k), **kw)
        if self._mode == "ivf":
            return faiss.SearchParametersIVF(nprobe=min(self.nprobe, self._index.nlist), **kw)
        return faiss.SearchParameters(**kw) if kw else None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.dim, "queries")
        sims_out, ids_out = empty_result(q.shape[0], k)
        n = len(self)
        if n == 0 or k <= 0:
            return sims_out, ids_out
        kk = min(k, n)
        if self._mode == "flat" and self.exact_search == "numpy" and self.storage == "float32":
            # zero-copy view of the IndexFlatIP vectors (valid until the next add/rebuild)
            xb = self._faiss.rev_swig_ptr(self._index.get_xb(), self._ntotal * self.dim)
            sims = q @ xb.reshape(self._ntotal, self.dim).T
            if self._dead:
                sims[:, ~self._alive[: self._ntotal]] = -np.inf
            vals, cols = top_k(sims, kk)
            sims_out[:, :kk], ids_out[:, :kk] = vals, self._labels[cols]
            return sims_out, ids_out
        step = self._step()
        if step != 1.0:  # integer codes: the query on the same grid (rounded here: FAISS would truncate)
            q = np.clip(np.rint(q / step), -127, 127).astype(np.float32)
        if self._mode == "pq":
            sims, pos = self._pq_search(q, kk)
        elif isinstance(self._index, StripedIndex):
            shards = len(self._index.shards)
            threaded = shards > 1 and q.shape[0] < self.search_threads and self._ntotal >= SPLIT_MIN * shards
            sims, pos = self._index.search(q, kk, self._striped_params(), self._scan_pool() if threaded else None)
        else:
            sims, pos = self._index.search(q, kk, params=self._params(kk))
        if step != 1.0:
            sims = sims * np.float32(step * step)
        found = pos >= 0
        ids_out[:, :kk] = np.where(found, self._labels[np.where(found, pos, 0)], -1)
        sims_out[:, :kk] = np.where(found, sims, -np.inf)
        return sims_out, ids_out

    def _pq_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Two-stage search; fetches ``k`` plus the dead entries (fast-scan takes no filter) and drops those."""
        faiss = self._faiss
        fetch = min(self._ntotal, k + self._dead)
        factor = max(1, -(-self.refine_factor * k // fetch))  # about refine_factor * k candidates either way
        params = faiss.IndexRefineSearchParameters(k_factor=float(factor))
        sims, pos = self._index.search(q, fetch, params=params)
        if not self._dead:
            return sims, pos
        alive = np.zeros_like(pos, bool)
        ok = pos >= 0
        alive[ok] = self._alive[pos[ok]]
        order = np.argsort(~alive, axis=1, kind="stable")[:, :k]  # live ones first, in their order
        sims, pos = np.take_along_axis(sims, order, 1), np.take_along_axis(pos, order, 1)
        dead = ~np.take_along_axis(alive, order, 1)
        return np.where(dead, -np.inf, sims), np.where(dead, -1, pos)

    def _scan_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.search_threads, thread_name_prefix="arcface-scan")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._index = None
