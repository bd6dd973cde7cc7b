"""Video throughput: ``arcface.video.track`` against a per-frame detect + embed loop, in the same run.

Clips are made here from the default wheel's face photos: 640x360 and 1280x720, with 1, 5 or 20 faces moving
across a plain background, 60 frames each, encoded with mp4v and decoded by OpenCV's FFmpeg, like a file.
For each clip the contenders alternate round by round (``--rounds``): the library's ``track`` with
``--detect-every`` 1 and 5, and a baseline that detects and embeds every face of every frame
(``FaceAnalyzer.analyze`` per frame, no tracking). Printed: median frames/s with min and max, and the ratio
of each to the baseline's median.

Then, where ``../shared/data`` is present, identification accuracy on the three-person clip of the tests
(``tests/video_clips.py``: two enrolled people, one stranger, blank and JPEG-compressed frames): for each
``--detect-every``, the tracks found and how many got the right identity (the stranger must be "unknown").

Usage: python benchmarks/bench_video.py [--rounds 3] [--frames 60] [--data ../shared/data]
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
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
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
        if args.data.is_dir():
            identification(fa, args.data, Path(tmp))
    return 0


def identification(fa: FaceAnalyzer, data: Path, tmp: Path) -> None:
    """Right identities per track on the tests' three-person clip, for several --detect-every values."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from video_clips import make_clip

    clip = make_clip(fa, data, tmp / "people")
    truth = clip["truth"]
    print("\n| --detect-every | tracks (>= 5 detections) | right identity | frames/s |")
    print("|---|---|---|---|")
    for every in (1, 3, 5, 10):
        owner: dict[int, set[str]] = {}

        def on_frame(frame, tracks, detected, owner=owner):
            for t in tracks:
                if detected and t.last.frame == frame.index:
                    cx, cy = (t.last.box[0] + t.last.box[2]) / 2, (t.last.box[1] + t.last.box[3]) / 2
                    for name, b in truth[frame.index].items():
                        if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]:
                            owner.setdefault(t.id, set()).add(name)

        t0 = time.perf_counter()
        events = [e for e in track(clip["path"], fa, clip["gallery"], detect_every=every, on_frame=on_frame)]
        fps = len(truth) / (time.perf_counter() - t0)
        long = [e for e in events if e.detections >= max(2, 5 // every)]
        expected = {"obama": "obama", "biden": "biden", "kit_harington": "unknown"}
        right = sum(
            1 for e in long if len(owner.get(e.track, ())) == 1 and expected[next(iter(owner[e.track]))] == e.identity
        )
        print(f"| {every} | {len(long)} | {right}/{len(long)} | {fps:.1f} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
