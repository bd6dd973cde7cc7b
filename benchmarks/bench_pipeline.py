"""Inference speed of the library against bare ONNX Runtime, measured in one run on this machine.

Prints:
1. detection ms/image at 640x640: ``SCRFD.detect`` on that one canvas (letterbox + preprocess + model + decode +
   NMS; ``det_sizes="single"``) vs the bare ``session.run`` of the same model on a ready blob (model time only);
2. recognition faces/s at batch 1, 32 and 128: ``OnnxEmbedder.embed`` (preprocess + model + normalise) vs bare
   ``session.run`` on the same, already preprocessed arrays; the ratio is the library's overhead (target <= 1.15);
3. end-to-end images/s on multi-face photos: ``FaceAnalyzer.analyze_many`` (faces of all images embedded in large
   batches) vs a per-image, per-face loop like insightface's FaceAnalysis (detect, then align and embed each face at
   batch 1); target >= 1.5x;
4. the cost of multi-resolution detection: ``FaceAnalyzer`` with ``det_sizes="auto"`` (640 + 160 canvases, the
   default) against ``"single"`` (640 only, the previous default), end to end on each wheel photo, rounds
   interleaved; ratio median (min-max) per photo (target <= 1.10x).

Measurements alternate between the two sides (rounds, median) so that load from other processes hits both alike.

    python benchmarks/bench_pipeline.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from arcface import FaceAnalyzer
from arcface.align import align_faces
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def alternate(a, b, rounds: int, repeat: int) -> tuple[float, float]:
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(timed(a, repeat))
        tb.append(timed(b, repeat))
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    d = builtin_dir()
    fa = FaceAnalyzer()
    photos = {n: load_image(d / n) for n in ("players.jpg", "gdp.jpg", "yaoming.jpg")}
    det, emb = fa.detector, fa.embedder
    threads = det.session.get_session_options().intra_op_num_threads
    print(f"pack {fa.pack.name}: {fa.pack.detector.name} + {fa.pack.recognizer.name}; threads={threads}")

    # 1. detection
    img = photos["players.jpg"]
    from arcface.detect.scrfd import letterbox

    blob = det.spec.preprocess(letterbox(img, det.input_size)[0][None])
    one_canvas = FaceAnalyzer(det_sizes="single").detector
    ours, bare = alternate(
        lambda: one_canvas.detect(img), lambda: det.session.run(None, {det.input_name: blob}), args.rounds, 5
    )
    print("\n1. detection at 640x640 (players.jpg, 1237x800)")
    print(f"   library detect     {ours * 1e3:7.1f} ms/image")
    print(f"   bare session.run   {bare * 1e3:7.1f} ms/image  (model only)")
    print(f"   ratio              {ours / bare:7.3f}x")

    # 2. recognition
    faces = det.detect(img)
    crops = align_faces(img, faces.kps)
    crops = np.concatenate([crops] * 6)[:128]
    print("\n2. recognition (w600k_mbf), faces/s")
    print("   batch   library    bare ORT   overhead")
    for bs in (1, 32, 128):
        c = crops[:bs]
        x = emb.spec.preprocess(c)
        ours, bare = alternate(
            lambda c=c, bs=bs: emb.embed(c, batch_size=bs),
            lambda x=x: emb.session.run([emb.output_name], {emb.input_name: x}),
            args.rounds,
            max(1, 64 // bs),
        )
        print(f"   {bs:5d} {bs / ours:10.1f} {bs / bare:10.1f}   {ours / bare:6.3f}x")

    # 3. end to end
    imgs = [photos["players.jpg"], photos["gdp.jpg"]] * 2
    n_faces = sum(len(f) for f in fa.analyze_many(imgs))

    def per_face_loop():
        for im in imgs:
            dets = det.detect(im)
            for k in range(len(dets)):
                crop = align_faces(im, dets.kps[k : k + 1])
                emb.embed(crop, batch_size=1)

    ours, base = alternate(lambda: fa.analyze_many(imgs), per_face_loop, args.rounds, 3)
    print(f"\n3. end to end on {len(imgs)} multi-face photos ({n_faces} faces)")
    print(f"   library analyze_many   {len(imgs) / ours:6.2f} images/s")
    print(f"   per-image per-face     {len(imgs) / base:6.2f} images/s")
    print(f"   speed-up               {base / ours:6.2f}x")

    # 4. multi-resolution detection against the single canvas
    single = FaceAnalyzer(det_sizes="single")
    print("\n4. multi-resolution detection (640 + 160) vs one 640 canvas, end to end per photo")
    print("   photo          faces   auto ms   single ms   ratio median (min-max)")
    for name, im in photos.items():
        ra, rs = [], []
        for _ in range(max(args.rounds, 7)):
            ra.append(timed(lambda im=im: fa.analyze(im), 5))
            rs.append(timed(lambda im=im: single.analyze(im), 5))
        ratios = [a / b for a, b in zip(ra, rs)]
        same = len(fa.analyze(im)) == len(single.analyze(im))
        print(
            f"   {name:13s} {len(fa.analyze(im)):5d}{'' if same else '*'} {statistics.median(ra) * 1e3:8.1f} "
            f"{statistics.median(rs) * 1e3:10.1f}   {statistics.median(ratios):.3f}x "
            f"({min(ratios):.3f}-{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
