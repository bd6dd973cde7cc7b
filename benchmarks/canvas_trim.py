"""Would a detector canvas trimmed to the photo's shape keep the landmarks? (It would save pixels: the default
640x640 canvas pads a 4:3 photo with a zero band.)

Every photo of ../shared/data and the wheel's three is letterboxed onto the 640x640 canvas as the detector does,
then run twice on ONNX Runtime f32: on the whole canvas, and on the canvas cut to the letterboxed photo plus
``--margin`` pixels of its zero band (each side rounded up to a multiple of 32). Printed: photos whose face count
differs, the largest landmark move (px of the photo) between the two, the embedding cosine of the faces (each
aligned from its own landmarks) and the fraction of canvas pixels kept.

    python benchmarks/canvas_trim.py [--margin 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from arcface import FaceAnalyzer
from arcface.align import align_faces
from arcface.detect.scrfd import letterbox
from arcface.imageio import load_image
from arcface.models.packs import builtin_dir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margin", type=int, default=0, help="pixels of the zero band kept beside the photo")
    args = ap.parse_args(argv)
    files = sorted(p for p in DATA.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files += sorted(builtin_dir().glob("*.jpg"))
    fa = FaceAnalyzer(runtime="onnxruntime", precision="f32")
    det = fa.detector

    def detect(img: np.ndarray, trim: bool):
        canvas, box = letterbox(img, (640, 640))
        size = (640, 640)
        if trim:
            w = min(640, -(-(box.width + args.margin) // 32) * 32)
            h = min(640, -(-(box.height + args.margin) // 32) * 32)
            canvas, size = np.ascontiguousarray(canvas[:h, :w]), (w, h)
        outs = det._run(canvas[None])
        cand = det._candidates(outs, 0, box, size, det.score_threshold)
        return det._finish([cand], det.score_threshold, img.shape[:2], "detector"), size

    moves, cosines, kept, differ = [], [], [], []
    for f in files:
        img = load_image(f)
        full, _ = detect(img, False)
        cut, (w, h) = detect(img, True)
        kept.append(w * h / 640**2)
        if len(full) != len(cut):
            differ.append(f"{f.name}: {len(full)} against {len(cut)} faces")
            continue
        if len(full) == 0:
            continue
        moves.append(float(np.abs(full.kps - cut.kps).max()))
        a = fa.embedder.embed(align_faces(img, full.kps))
        b = fa.embedder.embed(align_faces(img, cut.kps))
        cosines.extend((a * b).sum(axis=1).tolist())
    moves_a, cos_a = np.array(moves), np.array(cosines)
    print(f"{len(files)} photos, margin {args.margin} px; canvas pixels kept: {np.mean(kept):.3f} on average")
    print(f"face counts differ on {len(differ)} photo(s): {'; '.join(differ) or '-'}")
    print(
        f"largest landmark move per photo (px): max {moves_a.max():.4f}, 99th pct {np.percentile(moves_a, 99):.4f}, "
        f"median {np.median(moves_a):.5f} ({len(moves_a)} photos with faces)"
    )
    print(f"embedding cosine, trimmed to whole: min {cos_a.min():.6f}, mean {cos_a.mean():.7f}, {len(cos_a)} faces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
