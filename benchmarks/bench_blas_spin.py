"""numpy's spinning BLAS threads against the models: an identify loop with OpenBLAS's default spin and with the
short one the ``arcface`` command sets (``arcface.cli.BLAS_THREAD_TIMEOUT``).

After each matrix product numpy's OpenBLAS threads spin for about 0.1 s (``OPENBLAS_THREAD_TIMEOUT``, 2^28 cycles
by default) before they sleep. A float32 gallery's exact search is such a product (``FaissIndex``'s numpy scan), so
the photo analysed next finds its cores taken. OpenBLAS reads the setting once, when numpy loads, so each contender
runs in its own process (default spin, then the short one), the processes alternating round by round. Each process
times ``--repeats`` iterations of: analyse gdp.jpg (5 faces; ``--runtime auto``), then search its faces in a
float32 gallery of ``--n`` random unit vectors; printed: medians (min-max) over the rounds of each process's median
analyse and search times, and default / short.

    python benchmarks/bench_blas_spin.py [--n 100000] [--rounds 5] [--repeats 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, statistics, sys, time
import numpy as np
from arcface import FaceAnalyzer
from arcface.gallery.backends.faiss_index import FaissIndex
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir
n, repeats = int(sys.argv[1]), int(sys.argv[2])
fa = FaceAnalyzer(runtime="auto", precision="auto")
x = np.random.default_rng(0).standard_normal((n, 512), dtype=np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
gallery = FaissIndex(512)
gallery.upsert(np.arange(n), x)
img = load_image(builtin_dir() / "gdp.jpg")
analyse, search = [], []
for i in range(repeats + 3):
    t0 = time.perf_counter()
    faces = fa.analyze(img)
    t1 = time.perf_counter()
    gallery.search(np.stack([f.embedding for f in faces]), 5)
    t2 = time.perf_counter()
    if i >= 3:
        analyse.append(t1 - t0)
        search.append(t2 - t1)
print(json.dumps({"analyse": statistics.median(analyse) * 1e3, "search": statistics.median(search) * 1e3}))
"""


def run(timeout: str | None, n: int, repeats: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(repeats)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from arcface.cli import BLAS_THREAD_TIMEOUT

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="gallery size (float32, exact numpy scan)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args(argv)
    contenders = {"default spin": None, f"OPENBLAS_THREAD_TIMEOUT={BLAS_THREAD_TIMEOUT}": BLAS_THREAD_TIMEOUT}
    res: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name in list(contenders)[:: 1 if r % 2 == 0 else -1]:
            res[name].append(run(contenders[name], args.n, args.repeats))
    print(f"identify loop: analyse gdp.jpg (5 faces), then search a float32 gallery of {args.n:,}")
    print("ms per iteration, median (min-max) over the rounds")
    print("| contender | analyse | search |")
    print("|---|---|---|")
    med = {}
    for name, rows in res.items():
        cells = []
        for key in ("analyse", "search"):
            xs = [row[key] for row in rows]
            med[name, key] = statistics.median(xs)
            cells.append(f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    short = f"OPENBLAS_THREAD_TIMEOUT={BLAS_THREAD_TIMEOUT}"
    for key in ("analyse", "search"):
        print(f"{key}: default / short = {med['default spin', key] / med[short, key]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
