"""Video throughput: ``arcface.video.track`` against a per-frame detect + embed loop, in the same run.

Clips are made here from the default wheel's face photos: 640x360 and 1280x720, with 1, 5 or 20 faces moving
across a plain background, 60 frames each, encoded with mp4v and decoded by OpenCV's FFmpeg, like a file.
For each clip the contenders alternate round by round (``--rounds``): the library's ``track`` with
``--detect-every`` 1 and 5, and a baseline that detects and embeds every face of every frame
(``FaceAnalyzer.analyze`` per frame, no tracking). Printed: median frames/s with min and max, and the ratio
of each to the baseline's median.

Usage: python benchmarks/bench_video.py [--rounds 3] [--frames 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from arcface.face import largest_face
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir
from arcface.pipeline import FaceAnalyzer
from arcface.video import open_source, track


def make_clip(path: Path, size: tuple[int, int], faces: int, frames: int, sprite: np.ndarray) -> None:
    w, h = size
    side = max(48, min(h // 3, int(1.6 * w / max(faces, 1) ** 0.5 / 4)))
    sp = cv2.resize(sprite, (side, side), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    start = rng.uniform([0, 0], [w - side, h - side], size=(faces, 2))
    speed = rng.uniform(-3, 3, size=(faces, 2))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    for f in range(frames):
        canvas = np.full((h, w, 3), (90, 100, 110), np.uint8)
        for (x, y), (dx, dy) in zip(start, speed, strict=True):
            x0 = int(np.clip(x + dx * f, 0, w - side))
            y0 = int(np.clip(y + dy * f, 0, h - side))
            canvas[y0 : y0 + side, x0 : x0 + side] = sp
        writer.write(canvas[..., ::-1])
    writer.release()


def run_track(path: Path, fa: FaceAnalyzer, every: int) -> float:
    t = time.perf_counter()
    n = [0]
    for _ in track(path, fa, detect_every=every, on_frame=lambda fr, tr, d: n.__setitem__(0, n[0] + 1)):
        pass
    return n[0] / (time.perf_counter() - t)


def run_loop(path: Path, fa: FaceAnalyzer) -> float:
    t = time.perf_counter()
    n = 0
    for frame in open_source(path):
        fa.analyze(frame.image)
        n += 1
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args(argv)
    fa = FaceAnalyzer()
    photo = load_image(builtin_dir() / "yaoming.jpg")
    x1, y1, x2, y2 = (int(v) for v in largest_face(fa.analyze(photo, embed=False)).bbox)
    cx, cy, r = (x1 + x2) // 2, (y1 + y2) // 2, int(0.9 * max(x2 - x1, y2 - y1))
    sprite = photo[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r]
    print("| resolution | faces | contender | frames/s median (min-max) | vs per-frame loop |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((640, 360), (1280, 720)):
            for faces in (1, 5, 20):
                clip = Path(tmp) / f"{size[0]}x{size[1]}_{faces}.mp4"
                make_clip(clip, size, faces, args.frames, sprite)
                runs: dict[str, list[float]] = {"loop": [], "track 1": [], "track 5": []}
                for _ in range(args.rounds):  # interleaved, round by round
                    runs["loop"].append(run_loop(clip, fa))
                    runs["track 1"].append(run_track(clip, fa, 1))
                    runs["track 5"].append(run_track(clip, fa, 5))
                base = statistics.median(runs["loop"])
                for name, vals in runs.items():
                    label = {
                        "loop": "detect+embed every frame",
                        "track 1": "track, --detect-every 1",
                        "track 5": "track, --detect-every 5",
                    }[name]
                    med = statistics.median(vals)
                    print(
                        f"| {size[0]}x{size[1]} | {faces} | {label} | {med:.1f} ({min(vals):.1f}-{max(vals):.1f}) "
                        f"| {med / base:.2f}x |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
