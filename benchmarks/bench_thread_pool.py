"""ONNX Runtime's thread-pool modes (``ARCFACE_ORT_POOL``, :func:`arcface.runtime.thread_pool_mode`), end to end.

- ``spin``: ONNX Runtime's own default, one intra-op pool per session that keeps spinning after each run, so the
  detector's and the recognizer's pools spin against each other on few cores;
- ``shared``: one process-wide pool for every session;
- ``session`` (arcface's default): one pool per session that stops spinning when its run ends.

A shared pool is process-wide, so each contender runs in its own process; the processes alternate round by round
(the order reversed every other round). Each process times ``FaceAnalyzer.analyze`` (ONNX Runtime, f32) on one
photo (``--repeats`` times after a warm-up) and prints milliseconds per image; printed here: medians with min and
max, and the ratio of each mode's time to ``session``'s in the same round.

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
fa = FaceAnalyzer(runtime="onnxruntime")
img = load_image(builtin_dir() / sys.argv[1])
fa.analyze(img)
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    fa.analyze(img)
print((time.perf_counter() - t) / int(sys.argv[2]) * 1000)
"""


MODES = ("session", "shared", "spin")


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
    print("| photo | " + " | ".join(f"{m} ms (min-max)" for m in MODES) + " | shared / session | spin / session |")
    print("|---|" + "---|" * (len(MODES) + 2))
    for photo in ("yaoming.jpg", "gdp.jpg", "players.jpg"):
        res: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                res[mode].append(run(mode, photo, args.repeats))
        cells = [f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})" for v in res.values()]
        for other in ("shared", "spin"):
            ratio = [a / b for a, b in zip(res[other], res["session"])]
            cells.append(f"{statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})")
        print(f"| {photo} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
