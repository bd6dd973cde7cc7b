"""Gallery search at scale: exact scans (numpy, FAISS float32 / float16 / int8) vs approximate indexes, one run.

``--distribution faces`` (default): N enrolled people drawn from the statistics of real w600k_mbf embeddings
(``../shared/data/embedding_stats.npz``, :mod:`arcface.gallery.synthetic`; generated pairs match the real
genuine/impostor cosines), one photo each; queries are another photo of an enrolled person (genuine) and
photos of people not enrolled (open set). ``--distribution isotropic``: Gaussian directions, queries at cosine
0.7 to their source (the hardest case, unlike real templates).

For every index: build time, growth of resident memory (RSS), bytes per vector, single-query latency
p50/p99, batch-64 throughput, recall@1 against exact fp32 search (genuine queries), ``kept``: of the genuine
queries that exact search identifies correctly (top-1 is their person), the share this index still does, and
the open-set false positive identification rate at the calibrated threshold (non-enrolled queries whose top-1
reaches it); then each index's single-query speed-up over the numpy scan, measured in the same run.
``--json``: one JSON object per index.

``--indexes`` picks the contenders (comma-separated): ``flat`` (FAISS IndexFlatIP.search), ``numpy`` (the numpy
scan), ``flat-f16``/``flat-i8`` (the gallery's FAISS backend, ``storage="float16"``/``"int8"``: exact scans over
2-/1-byte codes, striped over one shard per core and scanned by all cores; ``flat-i8-1t``: one shard, one
thread), ``pq``/``pq-f16``/``pq-i8`` (the
two-stage search: PCA-128 + 4-bit PQ fast-scan, the best 128 x k re-ranked by float32 / float16 / int8 codes),
``ivf``/``ivf-i8`` (IVF, float32 / int8), ``hnsw``/``hnsw-i8`` (HNSW, float32 / int8; slow to build), ``usearch-i8``
(usearch HNSW over int8, multi-threaded build; ``pip install usearch``).

``--interleaved numpy,flat-i8,pq-f16`` then builds those contenders again, keeps them all in memory and times
single queries round by round (each round runs the same query through every contender, the order reversed
every other round), printing medians (min-max) and each one's speed-up over the first, per round: the
sequential latencies above are measured minutes apart, so a shared machine's noise can tilt them.

    python benchmarks/bench_gallery.py --n 200000 --json
    python benchmarks/bench_gallery.py --n 1000000 --indexes numpy --interleaved numpy,flat-i8,flat-f16
    python benchmarks/bench_gallery.py --n 200000 --indexes flat,numpy,flat-i8,hnsw-i8,usearch-i8
"""

from __future__ import annotations

import os

# numpy's OpenBLAS threads spin for about 0.1 s after each product (OPENBLAS_THREAD_TIMEOUT, 2^28 cycles by
# default) and take a core from whichever contender runs next: measured here, the two-thread int8 scan then ran no
# faster than one thread. A short timeout lets them sleep between queries (the numpy scan itself measured no
# slower). Read when numpy loads, so set before the import; a value already in the environment is kept. The value
# is the arcface command's own (arcface.cli loads no numpy).
from arcface.cli import BLAS_THREAD_TIMEOUT  # noqa: E402

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from arcface.gallery.backends.faiss_index import FaissIndex  # noqa: E402
from arcface.gallery.backends.numpy_index import NumpyIndex  # noqa: E402
from arcface.thresholds import package_thresholds_path, read_thresholds_file  # noqa: E402


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def make_data(n: int, dim: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # in chunks: no float64 temporaries of the whole set
        block = rng.standard_normal((min(100_000, n - s), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        data[s : s + block.shape[0]] = block
    source = rng.choice(n, n_queries, replace=False)
    noise = rng.standard_normal((n_queries, dim), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = 0.7 * data[source] + np.sqrt(1 - 0.7**2) * noise
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return data, np.ascontiguousarray(q, dtype=np.float32), source


#: The default pack's calibrated cosine threshold, as src/arcface/data/thresholds.json stores it.
THRESHOLD = next(
    e["threshold"] for e in read_thresholds_file(package_thresholds_path()).values() if e["model"] == "w600k_mbf.onnx"
)


def make_faces(n: int, n_queries: int, seed: int, stats_path: Path) -> tuple[np.ndarray, ...]:
    """Enrolled photos (n, D), genuine queries (another photo of enrolled people), their sources, and open-set
    queries (photos of people not enrolled)."""
    from arcface.gallery.synthetic import FaceStatistics, identities, photos

    stats = FaceStatistics.load(stats_path)
    rng = np.random.default_rng(seed)
    centres = identities(stats, n, rng)
    data = photos(stats, centres, rng)
    source = rng.choice(n, n_queries, replace=False)
    queries = photos(stats, centres[source], rng)
    strangers = photos(stats, identities(stats, n_queries, rng), rng)
    del centres
    return data, queries, source, strangers


class UsearchInt8:
    """usearch HNSW over int8 (inner product), built with all threads."""

    def __init__(self, dim: int, connectivity: int = 32, expansion_add: int = 128, expansion_search: int = 256):
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="ip", dtype="i8", connectivity=connectivity, expansion_add=expansion_add)
        self.index.expansion_search = expansion_search

    def upsert(self, ids: np.ndarray, x: np.ndarray) -> None:
        self.index.add(ids, x, threads=os.cpu_count() or 1)

    def search(self, q: np.ndarray, k: int):
        m = self.index.search(q, k)
        keys = np.asarray(m.keys, np.int64).reshape(len(q), -1)
        return 1 - np.asarray(m.distances, np.float32).reshape(len(q), -1), keys


def measure(
    name: str,
    factory,
    data: np.ndarray,
    queries: np.ndarray,
    k: int,
    exact_top1: np.ndarray | None,
    strangers: np.ndarray | None = None,
    source: np.ndarray | None = None,
):
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    index = factory()
    index.upsert(np.arange(len(data), dtype=np.int64), data)
    build_s = time.perf_counter() - t0
    gc.collect()
    mem = rss_bytes() - rss0
    index.search(queries[:2], k)  # warm-up
    lat = []
    top1 = np.empty(len(queries), np.int64)
    for i in range(len(queries)):
        t = time.perf_counter()
        _, ids = index.search(queries[i : i + 1], k)
        lat.append(time.perf_counter() - t)
        top1[i] = ids[0, 0]
    batch = np.resize(queries, (max(64, len(queries) // 64 * 64), queries.shape[1]))
    t = time.perf_counter()
    for b in range(0, len(batch), 64):
        index.search(batch[b : b + 64], k)
    batch_s = time.perf_counter() - t
    fpir = None
    if strangers is not None:
        sims, _ = index.search(strangers, 1)
        fpir = float((sims[:, 0] >= THRESHOLD).mean())
    lat_ms = np.array(lat) * 1e3
    row = {
        "backend": name,
        "build_s": build_s,
        "rss_mib": mem / 2**20,
        "bytes_per_vector": mem / len(data),
        "fpir_at_threshold": fpir,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "batch_qps": len(batch) / batch_s,
        "recall1": None if exact_top1 is None else float((top1 == exact_top1).mean()),
        "kept": None
        if exact_top1 is None or source is None
        else float((top1[exact_top1 == source] == source[exact_top1 == source]).mean()),
        "top1": top1,
    }
    del index
    gc.collect()
    return row


def interleaved(keys: list[str], factories: dict, data: np.ndarray, queries: np.ndarray, k: int, rounds: int) -> None:
    """Single-query latency of ``keys``, all built and resident, timed round by round in alternating order."""
    indexes = {}
    for key in keys:
        indexes[key] = factories[key][1]()
        indexes[key].upsert(np.arange(len(data), dtype=np.int64), data)
        indexes[key].search(queries[:2], k)  # warm-up
    ms: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        q = queries[r % len(queries)][None]
        for key in keys if r % 2 == 0 else keys[::-1]:
            t = time.perf_counter()
            indexes[key].search(q, k)
            ms[key].append((time.perf_counter() - t) * 1e3)
    base = keys[0]
    print(f"\n# interleaved, {rounds} rounds of one query (median (min-max) ms; speed-up over {base} per round)")
    for key in keys:
        ratio = [b / x for b, x in zip(ms[base], ms[key])]
        print(
            f"{factories[key][0]:48s} {np.median(ms[key]):8.2f} ({min(ms[key]):.2f}-{max(ms[key]):.2f})   "
            f"{np.median(ratio):.2f}x ({np.percentile(ratio, 5):.2f}-{np.percentile(ratio, 95):.2f}, 5th-95th pct)"
        )
    for index in indexes.values():
        if hasattr(index, "close"):
            index.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="gallery size (default 1,000,000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100, help="queries timed one by one (default 100)")
    ap.add_argument("--k", type=int, default=10, help="top-k per query (default 10)")
    ap.add_argument(
        "--indexes",
        default="flat,numpy,flat-f16,flat-i8,pq-f16,pq-i8,ivf,ivf-i8",
        help="contenders, comma-separated (see the module docstring; hnsw, hnsw-i8 and usearch-i8 build slowly)",
    )
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4*sqrt(N))")
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distribution", choices=("faces", "isotropic"), default="faces")
    ap.add_argument(
        "--stats", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "embedding_stats.npz"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object per index")
    ap.add_argument(
        "--interleaved",
        default="",
        help="contenders timed again, all in memory, query by query in alternating order (first = baseline)",
    )
    ap.add_argument("--rounds", type=int, default=200, help="rounds of --interleaved (one query each)")
    args = ap.parse_args()

    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    print(
        f"# gallery benchmark: N={args.n:,} D={args.dim} float32 ({args.n * args.dim * 4 / 2**30:.2f} GiB), "
        f"{args.queries} queries, top-{args.k}"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads), "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}"
    )
    t = time.perf_counter()
    strangers = None
    if args.distribution == "faces":
        data, queries, source, strangers = make_faces(args.n, args.queries, args.seed, args.stats)
        args.dim = data.shape[1]
    else:
        data, queries, source = make_data(args.n, args.dim, args.queries, args.seed)
    print(f"# {args.distribution} data generated in {time.perf_counter() - t:.1f} s")

    names = [a.strip() for a in args.indexes.split(",") if a.strip()]
    nlist = args.nlist or int(4 * np.sqrt(args.n))
    hnsw = {"hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction, "ef_search": args.ef_search}
    factories = {
        "flat": (
            "faiss-flat IndexFlatIP.search (exact)",
            lambda: FaissIndex(args.dim, force="flat", exact_search="faiss"),
        ),
        "numpy": ("numpy scan (exact)", lambda: NumpyIndex(args.dim)),
        "flat-f16": (
            "faiss-flat float16 codes (exact scan)",
            lambda: FaissIndex(args.dim, force="flat", storage="float16"),
        ),
        "flat-i8": ("faiss-flat int8 codes (exact scan)", lambda: FaissIndex(args.dim, force="flat", storage="int8")),
        "flat-i8-1t": (
            "faiss-flat int8 codes, one thread (exact scan)",
            lambda: FaissIndex(args.dim, force="flat", storage="int8", search_threads=1),
        ),
        "pq": ("faiss two-stage PCA128+PQ4fs, float32 re-rank", lambda: FaissIndex(args.dim, force="pq")),
        "pq-f16": (
            "faiss two-stage PCA128+PQ4fs, float16 re-rank",
            lambda: FaissIndex(args.dim, force="pq", storage="float16"),
        ),
        "pq-i8": (
            "faiss two-stage PCA128+PQ4fs, int8 re-rank",
            lambda: FaissIndex(args.dim, force="pq", storage="int8"),
        ),
        "ivf": (
            f"faiss-ivf nlist={nlist} nprobe={args.nprobe}",
            lambda: FaissIndex(args.dim, force="ivf", nlist=nlist, nprobe=args.nprobe),
        ),
        "ivf-i8": (
            f"faiss-ivf int8 nlist={nlist} nprobe={args.nprobe}",
            lambda: FaissIndex(args.dim, force="ivf", nlist=nlist, nprobe=args.nprobe, storage="int8"),
        ),
        "hnsw": (
            f"faiss-hnsw M={args.hnsw_m} efS={args.ef_search}",
            lambda: FaissIndex(args.dim, force="hnsw", **hnsw),
        ),
        "hnsw-i8": (
            f"faiss-hnsw int8 M={args.hnsw_m} efS={args.ef_search}",
            lambda: FaissIndex(args.dim, force="hnsw", storage="int8", **hnsw),
        ),
        "usearch-i8": (
            f"usearch-hnsw int8 M={args.hnsw_m} efS={args.ef_search}",
            lambda: UsearchInt8(args.dim, args.hnsw_m, args.ef_construction, args.ef_search),
        ),
    }
    together = [a.strip() for a in args.interleaved.split(",") if a.strip()]
    unknown = [n for n in names + together if n not in factories]
    if unknown:
        raise SystemExit(f"unknown --indexes {unknown}; choose from {', '.join(factories)}")
    rows = []
    exact = measure(*factories["flat"], data, queries, args.k, None, strangers)
    exact["recall1"] = 1.0
    exact["kept"] = 1.0
    exact["key"] = "flat"
    if "flat" in names:
        rows.append(exact)
    print(f"# exact top-1 equals the query's source vector for {(exact['top1'] == source).mean():.1%} of queries")
    for key in names:
        if key == "flat":
            continue
        row = measure(*factories[key], data, queries, args.k, exact["top1"], strangers, source)
        row["key"] = key
        rows.append(row)
        if not args.json:
            done = f"built in {row['build_s']:.1f} s, p50 {row['p50_ms']:.2f} ms, recall@1 {row['recall1']:.3f}"
            print(f"# {row['backend']}: {done}", flush=True)

    if together:
        interleaved(together, factories, data, queries, args.k, args.rounds)
    if args.json:
        for r in rows:
            print(
                json.dumps(
                    {
                        "index": r["backend"],
                        "distribution": args.distribution,
                        "n": args.n,
                        "build_s": round(r["build_s"], 3),
                        "bytes_per_vector": round(r["bytes_per_vector"], 1),
                        "rss_mib": round(r["rss_mib"], 1),
                        "p50_ms": round(r["p50_ms"], 3),
                        "p99_ms": round(r["p99_ms"], 3),
                        "batch64_qps": round(r["batch_qps"], 1),
                        "recall_at_1": r["recall1"],
                        "kept_correct": r["kept"],
                        "fpir_at_threshold": r["fpir_at_threshold"],
                        "threshold": THRESHOLD,
                    }
                )
            )
        return
    print()
    cols = ("build s", "MiB", "B/vec", "p50 ms", "p99 ms", "b64 q/s", "recall@1", "kept")
    header = f"{'index':48s} " + " ".join(f"{c:>9s}" for c in cols)
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['backend']:48s} {r['build_s']:9.2f} {r['rss_mib']:9.0f} {r['bytes_per_vector']:9.0f} "
            f"{r['p50_ms']:9.2f} {r['p99_ms']:9.2f} {r['batch_qps']:9.1f} {r['recall1']:9.3f} {r['kept']:9.3f}"
        )
    by = {r["key"]: r for r in rows}
    if "numpy" in by:
        print()
        for r in rows:
            if r["key"] != "numpy":
                print(f"{r['backend']}: single query {by['numpy']['p50_ms'] / r['p50_ms']:.2f}x the numpy scan's speed")


if __name__ == "__main__":
    main()
