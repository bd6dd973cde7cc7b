"""One shared ONNX Runtime thread pool (default) against one pool per session, end to end.

ONNX Runtime gives each session its own intra-op pool by default; the detector's and the recognizer's pools
then spin against each other on few cores. arcface shares one process-wide pool (``ARCFACE_ORT_POOL=shared``).
The pool is process-wide, so each contender runs in its own process; the processes alternate round by round.
Each process times ``FaceAnalyzer.analyze`` on one photo (``--repeats`` times after a warm-up) and prints
milliseconds per image; printed here: medians with min and max, and the ratio session / shared.

Usage: python benchmarks/bench_thread_pool.py [--rounds 5] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import sys, time
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir
from arcface.pipeline import FaceAnalyzer
fa = FaceAnalyzer()
img = load_image(builtin_dir() / sys.argv[1])
fa.analyze(img)
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    fa.analyze(img)
print((time.perf_counter() - t) / int(sys.argv[2]) * 1000)
"""


def run(mode: str, photo: str, repeats: int) -> float:
    env = {**os.environ, "ARCFACE_ORT_POOL": mode}
    out = subprocess.run([sys.executable, "-c", CHILD, photo, str(repeats)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    print("| photo | shared pool ms (min-max) | per-session pools ms (min-max) | speed-up |")
    print("|---|---|---|---|")
    for photo in ("yaoming.jpg", "gdp.jpg", "players.jpg"):
        res: dict[str, list[float]] = {"shared": [], "session": []}
        for _ in range(args.rounds):
            for mode in ("shared", "session"):
                res[mode].append(run(mode, photo, args.repeats))
        a, b = statistics.median(res["shared"]), statistics.median(res["session"])
        print(
            f"| {photo} | {a:.1f} ({min(res['shared']):.1f}-{max(res['shared']):.1f}) "
            f"| {b:.1f} ({min(res['session']):.1f}-{max(res['session']):.1f}) | {b / a:.2f}x |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
