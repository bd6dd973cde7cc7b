"""Gallery search at scale: numpy scan vs exact FAISS vs approximate FAISS (HNSW, IVF), one run.

``--distribution faces`` (default): N enrolled people drawn from the statistics of real w600k_mbf embeddings
(``../shared/data/embedding_stats.npz``, :mod:`arcface.gallery.synthetic`; generated pairs match the real
genuine/impostor cosines), one photo each; queries are another photo of an enrolled person (genuine) and
photos of people not enrolled (open set). ``--distribution isotropic``: Gaussian directions, queries at cosine
0.7 to their source (the hardest case, unlike real templates).

For every backend: build time, growth of resident memory (RSS), bytes per vector, single-query latency
p50/p99, batch-64 throughput, recall@1 against exact fp32 search (genuine queries), and the open-set false
positive identification rate at the calibrated threshold (non-enrolled queries whose top-1 reaches it);
then the speed ratio exact-FAISS / numpy measured in the same run. ``--json``: one JSON object per index.

    python benchmarks/bench_gallery.py --n 200000 --json
    python benchmarks/bench_gallery.py --n 200000 --ann hnsw,ivf   # HNSW build: ~20 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from arcface.gallery.backends.faiss_index import FaissIndex
from arcface.gallery.backends.numpy_index import NumpyIndex


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


THRESHOLD = 0.2703  # the default pack's calibrated cosine threshold (src/arcface/data/thresholds.json)


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


def measure(
    name: str,
    factory,
    data: np.ndarray,
    queries: np.ndarray,
    k: int,
    exact_top1: np.ndarray | None,
    strangers: np.ndarray | None = None,
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
        "top1": top1,
    }
    del index
    gc.collect()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="gallery size (default 1,000,000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100, help="queries timed one by one (default 100)")
    ap.add_argument("--k", type=int, default=10, help="top-k per query (default 10)")
    ap.add_argument("--ann", default="ivf", help="approximate indexes: ivf, hnsw or hnsw,ivf (HNSW builds slowly)")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4*sqrt(N))")
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--skip-numpy", action="store_true", help="leave out the numpy scan")
    ap.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distribution", choices=("faces", "isotropic"), default="faces")
    ap.add_argument(
        "--stats", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "embedding_stats.npz"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object per index")
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
        f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads)"
    )
    t = time.perf_counter()
    strangers = None
    if args.distribution == "faces":
        data, queries, source, strangers = make_faces(args.n, args.queries, args.seed, args.stats)
        args.dim = data.shape[1]
    else:
        data, queries, source = make_data(args.n, args.dim, args.queries, args.seed)
    print(f"# {args.distribution} data generated in {time.perf_counter() - t:.1f} s")

    rows = []
    exact = measure(
        "faiss-flat IndexFlatIP.search (exact)",
        lambda: FaissIndex(args.dim, force="flat", exact_search="faiss"),
        data,
        queries,
        args.k,
        None,
        strangers,
    )
    exact["recall1"] = 1.0
    rows.append(exact)
    print(f"# exact top-1 equals the query's source vector for {(exact['top1'] == source).mean():.1%} of queries")
    if not args.skip_numpy:
        rows.append(
            measure("numpy scan (exact)", lambda: NumpyIndex(args.dim), data, queries, args.k, exact["top1"], strangers)
        )
    for kind in [a.strip() for a in args.ann.split(",") if a.strip()]:
        if kind == "hnsw":
            name = f"faiss-hnsw M={args.hnsw_m} efC={args.ef_construction} efS={args.ef_search}"
            factory = lambda: FaissIndex(  # noqa: E731
                args.dim,
                force="hnsw",
                hnsw_m=args.hnsw_m,
                ef_construction=args.ef_construction,
                ef_search=args.ef_search,
            )
        elif kind == "ivf":
            nlist = args.nlist or int(4 * np.sqrt(args.n))
            name = f"faiss-ivf nlist={nlist} nprobe={args.nprobe}"
            factory = lambda nlist=nlist: FaissIndex(  # noqa: E731
                args.dim, force="ivf", nlist=nlist, nprobe=args.nprobe
            )
        else:
            raise SystemExit(f"unknown --ann {kind!r}")
        rows.append(measure(name, factory, data, queries, args.k, exact["top1"], strangers))

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
                        "fpir_at_threshold": r["fpir_at_threshold"],
                        "threshold": THRESHOLD,
                    }
                )
            )
        return
    print()
    cols = ("build s", "RSS MiB", "p50 ms", "p99 ms", "b64 q/s", "recall@1")
    header = f"{'backend':44s} " + " ".join(f"{c:>9s}" for c in cols)
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['backend']:44s} {r['build_s']:9.2f} {r['rss_mib']:9.0f} {r['p50_ms']:9.2f} {r['p99_ms']:9.2f} "
            f"{r['batch_qps']:9.1f} {r['recall1']:9.3f}"
        )
    print()
    by = {r["backend"].split()[0]: r for r in rows}
    if "numpy" in by:
        f, n = by["faiss-flat"], by["numpy"]
        print(
            f"speed ratio exact FAISS / numpy scan: single query {n['p50_ms'] / f['p50_ms']:.2f} (p50), "
            f"batched {f['batch_qps'] / n['batch_qps']:.2f} (> 1: FAISS faster)"
        )
        print(
            "(the gallery's FAISS backend answers exact searches with a numpy product over the IndexFlatIP "
            "storage, exact_search='numpy', so it runs at the numpy scan's speed)"
        )
    for r in rows:
        if r["backend"].startswith(("faiss-hnsw", "faiss-ivf")):
            print(
                f"{r['backend'].split()[0]} vs exact FAISS: p50 {by['faiss-flat']['p50_ms'] / r['p50_ms']:.1f}x "
                f"faster, recall@1 {r['recall1']:.3f}, build {r['build_s']:.1f} s"
            )


if __name__ == "__main__":
    main()
