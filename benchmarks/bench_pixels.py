"""The OpenVINO detector fed uint8 canvases (converted inside the compiled model) against the float tensor of
``ModelSpec.preprocess`` (converted by OpenCV first), end to end on the wheel's photos.

Two analyzers on ``--runtime openvino`` differ only in their detector's session: one takes the letterboxed
canvas as pixels (the default, see ``arcface.runtime.ov_session.OpenVinoSession``), the other the preprocessed
float tensor. First their landmarks are compared (the conversion is the same arithmetic), then each photo is
analysed by both, rounds alternating; printed: milliseconds per photo, median (min-max), and float / pixels.

    python benchmarks/bench_pixels.py [--rounds 15] [--precision bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from arcface import FaceAnalyzer
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir
from arcface.runtime import cpu_info, get_session


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--precision", default="bf16" if cpu_info().bf16 else "f32")
    args = ap.parse_args(argv)
    pixels = FaceAnalyzer(runtime="openvino", precision=args.precision)
    floats = FaceAnalyzer(runtime="openvino", precision=args.precision)
    floats.detector.session = get_session(floats.detector.model_path, runtime="openvino", precision="f32")
    floats.detector._pixels = False
    assert pixels.detector._pixels and pixels.detector.session is not floats.detector.session
    photos = {n: load_image(builtin_dir() / n) for n in ("yaoming.jpg", "gdp.jpg", "players.jpg")}
    print(f"CPU: {cpu_info().describe()}; OpenVINO, recognizer {args.precision}, detector f32")
    for name, img in photos.items():
        a, b = pixels.analyze(img), floats.analyze(img)
        diff = max((float(np.abs(x.kps - y.kps).max()) for x, y in zip(a, b)), default=0.0)
        print(f"{name}: {len(a)} and {len(b)} faces, landmarks differ by at most {diff:.6f} px")
    times: dict[tuple[str, str], list[float]] = {(n, k): [] for n in photos for k in ("pixels", "float")}
    for r in range(args.rounds):
        for kind, fa in (("pixels", pixels), ("float", floats))[:: 1 if r % 2 == 0 else -1]:
            for name, img in photos.items():
                fa.analyze(img)
                t = []
                for _ in range(10):
                    t0 = time.perf_counter()
                    fa.analyze(img)
                    t.append(time.perf_counter() - t0)
                times[(name, kind)].append(statistics.median(t) * 1e3)
    print("| photo | pixels in the model, ms | float tensor, ms | float / pixels per round |")
    print("|---|---|---|---|")
    for name in photos:
        p, f = times[(name, "pixels")], times[(name, "float")]
        r = [y / x for x, y in zip(p, f)]
        print(
            f"| {name} | {statistics.median(p):.2f} ({min(p):.2f}-{max(p):.2f}) | "
            f"{statistics.median(f):.2f} ({min(f):.2f}-{max(f):.2f}) | "
            f"{statistics.median(r):.3f}x ({min(r):.3f}-{max(r):.3f}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
