"""A one-off command's wall time with OpenVINO: compiled models imported from the disk cache against compiled
in the process, and ONNX Runtime for reference.

Each round runs ``arcface verify yaoming.jpg gdp.jpg`` (the wheel's photos) once per contender, each in a new
process, the contenders' order alternating round by round:

- ``openvino, cache warm``: ``--runtime openvino`` with a cache folder filled by an earlier run (the detector's
  two canvases and the recognizer imported from ``$ARCFACE_CACHE_DIR/openvino``, checked against their SHA-256);
- ``openvino, cache empty``: the same with an empty cache folder each time (every model compiled, then stored:
  what the first run on a machine costs);
- ``onnxruntime``: ``--runtime onnxruntime --precision f32``;
- ``default``: no engine option (``--runtime auto``: on two photos, ONNX Runtime, see
  ``arcface.cli.common.FEW_PHOTOS``; the engine choice cached by a warm-up run).

``--precision`` is bf16 where OpenVINO offers it on this CPU, else f32 (printed). Printed: wall seconds per
contender, median (min-max), and empty / warm.

    python benchmarks/bench_cold_start.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], cache: Path) -> float:
    env = {**os.environ, "ARCFACE_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "arcface", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 1):  # 1: "DIFFERENT people", as expected for these two photos
        raise SystemExit(out.stderr)
    return wall


def main(argv: list[str] | None = None) -> int:
    import openvino as ov

    from arcface.models.packs import builtin_dir
    from arcface.runtime import cpu_info

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    opts = ap.parse_args(argv)
    photos = [str(builtin_dir() / "yaoming.jpg"), str(builtin_dir() / "gdp.jpg")]
    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if bf16 else "f32"
    ovargs = ["verify", *photos, "--runtime", "openvino", "--precision", precision]
    with tempfile.TemporaryDirectory(prefix="arcface-cold-") as td:
        warm = Path(td) / "warm"
        run(ovargs, warm)  # fills the warm cache
        run(["verify", *photos], warm)  # and the engine choice of the default
        contenders = {
            "openvino, cache warm": lambda: run(ovargs, warm),
            "openvino, cache empty": lambda: run(ovargs, Path(tempfile.mkdtemp(dir=td))),
            "onnxruntime f32": lambda: run(["verify", *photos, "--runtime", "onnxruntime", "--precision", "f32"], warm),
            "default (no engine option)": lambda: run(["verify", *photos], warm),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(opts.rounds):
            for name in list(contenders)[:: 1 if r % 2 == 0 else -1]:
                times[name].append(contenders[name]())
    print(f"CPU: {cpu_info().describe()}; OpenVINO {ov.get_version()}, precision {precision}")
    print(f"arcface verify yaoming.jpg gdp.jpg, new process per run, {opts.rounds} rounds interleaved")
    print("| contender | wall s, median (min-max) |")
    print("|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.3f} ({min(t):.3f}-{max(t):.3f}) |")
    for a, b in (
        ("openvino, cache empty", "openvino, cache warm"),
        ("openvino, cache empty", "default (no engine option)"),
    ):
        r = [x / y for x, y in zip(times[a], times[b])]
        print(f"{a} / {b}, per round: {statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
