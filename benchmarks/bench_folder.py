"""Folder throughput: ``analyze_many`` over real photos against the time of its two models alone.

What ``arcface embed DIR`` runs (decode, letterbox, detect, decode boxes, align, embed in batches) is timed on the
labelled photos of ../shared/data (deepface's and face_recognition's photos and the group photos: 77 files from
465x745 to 2204x970 pixels), against the models alone on inputs prepared beforehand: one detector run per photo and
canvas (640 and 160 with ``sizes="auto"``; one more for photos that needed the padded retry) and the recognizer on
the same crops in batches of 128. Rounds alternate four contenders: the pipeline as it runs (on ONNX Runtime with
2-4 threads: one-thread lanes, ``FaceAnalyzer(lanes=)``; else one lane that decodes the next photos while the
models run, ``decode_ahead=2``), the same in one lane (``lanes=1``), one lane decoding in the caller's thread
(``decode_ahead=0``), and the models alone; the ratio pipeline / models is the cost of everything around the
models (issue target <= 1.2). A last line times JPEG decoding alone (OpenCV, full and reduced scale) on the same
files.

    python benchmarks/bench_folder.py [--runtime auto] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    paths = photos()
    if not paths:
        raise SystemExit(f"no photos under {DATA}")
    fa = FaceAnalyzer(runtime=args.runtime, precision=args.precision)
    det, emb = fa.detector, fa.embedder
    print(f"{len(paths)} photos; engine {fa.engine.engine} ({fa.engine.reason})")
    # inputs of the models alone, prepared once: canvases (and padded canvases where the retry ran), crops
    results = fa.analyze_many(paths, with_crops=True)
    blobs = []
    for p, faces in zip(paths, results):
        img = load_image(p)
        for canvas in det.sizes:  # every canvas of a detection pass (640 and 160 with sizes="auto")
            blobs.append(det.model_input(letterbox(img, canvas)[0][None]))
        if any(f.path == "padded" for f in faces):  # the padded retry ran a second 640 canvas
            blobs.append(det.model_input(letterbox(img, det.input_size, max(img.shape[:2]) // 2)[0][None]))
    crops = np.concatenate([np.stack([f.crop for f in faces]) for faces in results if faces])
    crop_blobs = [emb.spec.preprocess(crops[i : i + fa.batch_size]) for i in range(0, len(crops), fa.batch_size)]
    retried = sum(any(f.path == "padded" for f in faces) for faces in results)
    print(f"{len(crops)} faces; canvases {det.sizes}; {retried} photos needed the padded retry")

    one_lane = FaceAnalyzer(runtime=fa.engine.runtime, precision=fa.engine.precision, lanes=1)
    serial = FaceAnalyzer(runtime=fa.engine.runtime, precision=fa.engine.precision, decode_ahead=0, lanes=1)
    lanes = len(fa._lane_parts(len(paths)))
    print(f"pipeline: {lanes} lane(s) of {'one thread' if lanes > 1 else f'{fa._threads} threads'}")

    def pipeline() -> None:
        fa.analyze_many(paths)

    def pipeline_one_lane() -> None:
        one_lane.analyze_many(paths)

    def pipeline_serial() -> None:
        serial.analyze_many(paths)

    def models() -> None:
        for b in blobs:
            det.session.run(det.output_names, {det.input_name: b})
        for b in crop_blobs:
            emb.session.run([emb.output_name], {emb.input_name: b})

    contenders = (
        ("pipeline", pipeline),
        ("one lane", pipeline_one_lane),
        ("serial decode", pipeline_serial),
        ("models", models),
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
    for name, xs in times.items():
        print(
            f"{name:<9} {statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f}), "
            f"{len(paths) / statistics.median(xs):.1f} photos/s"
        )
    print(f"pipeline / models alone: {statistics.median(ratio):.2f}x ({min(ratio):.2f}-{max(ratio):.2f})")
    print(f"decode overlap (one lane): {statistics.median(overlap):.2f}x ({min(overlap):.2f}-{max(overlap):.2f})")
    print(f"lanes speed-up (one lane / pipeline): {statistics.median(gain):.2f}x ({min(gain):.2f}-{max(gain):.2f})")
    encoded = [np.frombuffer(p.read_bytes(), np.uint8) for p in paths]
    for flag, what in ((cv2.IMREAD_COLOR, "full scale"), (cv2.IMREAD_REDUCED_COLOR_2, "1/2 scale")):
        t = time.perf_counter()
        for buf in encoded:
            cv2.imdecode(buf, flag)
        print(f"JPEG decoding alone, {what}: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
