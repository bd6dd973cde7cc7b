"""Folder throughput: ``analyze_many`` over real photos against the time of its two models alone.

What ``arcface embed DIR`` runs (decode, letterbox, detect, decode boxes, align, embed in batches) is timed on the
labelled photos of ../shared/data (deepface's and face_recognition's photos and the group photos: 77 files from
465x745 to 2204x970 pixels), against the models alone on inputs prepared beforehand: one detector run per photo and
canvas (640 and 160 with ``sizes="auto"``; one more for photos that needed the padded retry) and the recognizer on
the same crops in batches of 128. Rounds alternate six contenders: the pipeline as it runs (on ONNX Runtime with
2-4 threads: one-thread lanes, ``FaceAnalyzer(lanes=)``; else one lane that decodes the next photos while the
models run, ``decode_ahead=2``), the same in one lane (``lanes=1``), one lane decoding in the caller's thread
(``decode_ahead=0``), the models alone, the whole pipeline on one thread (one-thread sessions, one lane, decoding
in the caller's thread), and as many separate processes as the pipeline has threads, each running that one-thread
pipeline on its share of the photos (photo i in process i % n; started beforehand, driven round by round).

- pipeline / models alone is the cost of everything around the models (issue target <= 1.2);
- the one-thread time is the folder's CPU work, so divided by the threads it is the floor of any arrangement of
  that work here (perfect scaling), and floor / models alone says whether the target is within reach at all;
- pipeline / processes is the cost of running the work in one process, against what the cores give when the
  work shares nothing but the machine.

A last line times JPEG decoding alone (OpenCV, full and reduced scale) on the same files.

    python benchmarks/bench_folder.py [--runtime auto] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from arcface import FaceAnalyzer
from arcface.detect.scrfd import letterbox
from arcface.imageio import load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def photos() -> list[Path]:
    out = sorted((DATA / "deepface_by_identity").glob("*/*.jpg"))
    out += sorted(p for p in (DATA / "face_recognition_by_identity").glob("*/*") if p.is_file())
    out += sorted(p for p in (DATA / "multi_face").glob("*") if p.is_file())
    return out


def spread(xs: list[float], fmt: str = ".2f", unit: str = "") -> str:
    """``median<unit> (min-max)`` of ``xs``, each number in ``fmt``: ``1.55x (1.53-1.81)``."""
    m, lo, hi = (format(v, fmt) for v in (statistics.median(xs), min(xs), max(xs)))
    return f"{m}{unit} ({lo}-{hi})"


def model_inputs(fa: FaceAnalyzer, paths: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """The inputs ``fa``'s two models get from ``paths``, prepared once: every canvas of each photo's detection
    pass (640 and 160 with ``sizes="auto"``; the padded canvas where the retry ran) and the face crops in
    batches of ``fa.batch_size``; with the number of photos that needed the padded retry."""
    det, emb = fa.detector, fa.embedder
    results = fa.analyze_many(paths, with_crops=True)
    det_blobs = []
    for p, faces in zip(paths, results):
        img = load_image(p)
        for canvas in det.sizes:
            det_blobs.append(det.model_input(letterbox(img, canvas)[0][None]))
        if any(f.path == "padded" for f in faces):  # the padded retry ran a second 640 canvas
            det_blobs.append(det.model_input(letterbox(img, det.input_size, max(img.shape[:2]) // 2)[0][None]))
    found = [np.stack([f.crop for f in faces]) for faces in results if faces]
    crops = np.concatenate(found) if found else np.zeros((0, 112, 112, 3), np.uint8)
    crop_blobs = [emb.spec.preprocess(crops[i : i + fa.batch_size]) for i in range(0, len(crops), fa.batch_size)]
    return det_blobs, crop_blobs, sum(any(f.path == "padded" for f in faces) for faces in results)


def run_models(fa: FaceAnalyzer, det_blobs: list[np.ndarray], crop_blobs: list[np.ndarray]) -> None:
    """``fa``'s two models alone on inputs from :func:`model_inputs` (bare session runs)."""
    det, emb = fa.detector, fa.embedder
    for b in det_blobs:
        det.session.run(det.output_names, {det.input_name: b})
    for b in crop_blobs:
        emb.session.run([emb.output_name], {emb.input_name: b})


def child(share: int, shares: int, runtime: str, precision: str) -> None:
    """One of the "processes" contender's processes: the one-thread pipeline on photos share, share + shares, ...
    once per line read from stdin, printing the seconds it took."""
    fa = FaceAnalyzer(runtime=runtime, precision=precision, threads=1, decode_ahead=0, lanes=1)
    mine = photos()[share::shares]
    fa.analyze_many(mine)
    print("ready", flush=True)
    for _ in sys.stdin:
        t = time.perf_counter()
        fa.analyze_many(mine)
        print(time.perf_counter() - t, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, args.runtime, args.precision)
    paths = photos()
    if not paths:
        raise SystemExit(f"no photos under {DATA}")
    fa = FaceAnalyzer(runtime=args.runtime, precision=args.precision)
    print(f"{len(paths)} photos; engine {fa.engine.engine} ({fa.engine.reason})")
    det_blobs, crop_blobs, retried = model_inputs(fa, paths)
    n_faces = sum(len(b) for b in crop_blobs)
    print(f"{n_faces} faces; canvases {fa.detector.sizes}; {retried} photos needed the padded retry")

    one_lane = FaceAnalyzer(runtime=fa.engine.runtime, precision=fa.engine.precision, lanes=1)
    serial = FaceAnalyzer(runtime=fa.engine.runtime, precision=fa.engine.precision, decode_ahead=0, lanes=1)
    one_thread = FaceAnalyzer(
        runtime=fa.engine.runtime, precision=fa.engine.precision, threads=1, decode_ahead=0, lanes=1
    )
    lanes = len(fa._lane_parts(len(paths)))
    print(f"pipeline: {lanes} lane(s) of {'one thread' if lanes > 1 else f'{fa._threads} threads'}")

    def pipeline() -> None:
        fa.analyze_many(paths)

    def pipeline_one_lane() -> None:
        one_lane.analyze_many(paths)

    def pipeline_serial() -> None:
        serial.analyze_many(paths)

    def pipeline_one_thread() -> None:
        one_thread.analyze_many(paths)

    def models() -> None:
        run_models(fa, det_blobs, crop_blobs)

    engine = ["--runtime", fa.engine.runtime, "--precision", fa.engine.precision]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(k), str(fa._threads), *engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(fa._threads)
    ]
    for c in children:
        assert c.stdout is not None
        if c.stdout.readline().strip() != "ready":
            raise SystemExit("a --child process did not start (see its stderr above)")

    def processes() -> None:  # the wall time until the last process is done
        for c in children:
            assert c.stdin is not None
            c.stdin.write("go\n")
            c.stdin.flush()
        for c in children:
            assert c.stdout is not None
            float(c.stdout.readline())

    contenders = (
        ("pipeline", pipeline),
        ("one lane", pipeline_one_lane),
        ("serial decode", pipeline_serial),
        ("models", models),
        ("one thread", pipeline_one_thread),
        (f"{fa._threads} processes", processes),
    )
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _, fn in contenders:
        fn()
    for r in range(args.rounds):
        for name, fn in contenders[:: 1 if r % 2 == 0 else -1]:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ratio = [a / b for a, b in zip(times["pipeline"], times["models"])]
    overlap = [b / a for a, b in zip(times["one lane"], times["serial decode"])]
    gain = [b / a for a, b in zip(times["pipeline"], times["one lane"])]
    floor = [t / fa._threads for t in times["one thread"]]  # the CPU work spread perfectly over the threads
    floor_ratio = [f / m for f, m in zip(floor, times["models"])]
    reached = [f / p for f, p in zip(floor, times["pipeline"])]
    in_one = [p / q for p, q in zip(times["pipeline"], times[f"{fa._threads} processes"])]
    for c in children:
        assert c.stdin is not None
        c.stdin.close()
        c.wait(timeout=60)
    for name, xs in times.items():
        print(f"{name:<13} {spread(xs, unit=' s')}, {len(paths) / statistics.median(xs):.1f} photos/s")
    print(f"pipeline / models alone: {spread(ratio, unit='x')}")
    print(
        f"floor on {fa._threads} thread(s) (one-thread time / {fa._threads}): {statistics.median(floor):.2f} s = "
        f"{spread(floor_ratio, unit='x')} the models alone; the pipeline reaches {spread(reached, '.0%')} of it"
    )
    print(f"pipeline / {fa._threads} one-thread processes: {spread(in_one, unit='x')}")
    print(f"decode overlap (one lane): {spread(overlap, unit='x')}")
    print(f"lanes speed-up (one lane / pipeline): {spread(gain, unit='x')}")
    encoded = [np.frombuffer(p.read_bytes(), np.uint8) for p in paths]
    for flag, what in ((cv2.IMREAD_COLOR, "full scale"), (cv2.IMREAD_REDUCED_COLOR_2, "1/2 scale")):
        t = time.perf_counter()
        for buf in encoded:
            cv2.imdecode(buf, flag)
        print(f"JPEG decoding alone, {what}: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
