"""The two detector families side by side on the labelled photos of ../shared/data (same recognizer).

For each pack (default: ``buffalo_sc`` = SCRFD-500M, ``mtcnn_mbf`` = MTCNN; both with the MobileFaceNet
recognizer) and each set:

* photos with a detected face (the rest cannot be verified);
* 10-fold verification accuracy, EER and TAR at FAR 1e-3 over the pairs whose two photos have a face
  (largest face of each photo, aligned, cosine);
* median milliseconds per photo for detection + alignment + embedding, the packs interleaved photo by photo
  in one run (so machine drift hits both alike), with min and max.

Sets: deepface (520 labelled pairs), face_recognition (all pairs of 13 photos of 5 people), att_faces (all
pairs of 400 tightly cropped 92x112 faces of 40 people).

Usage: python benchmarks/compare_detectors.py [--data ../shared/data] [--packs buffalo_sc mtcnn_mbf] [--json f]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arcface.eval.metrics import far_key, summarize_verification  # noqa: E402
from arcface.face import largest_face  # noqa: E402
from arcface.imageio import load_image  # noqa: E402
from arcface.pipeline import FaceAnalyzer  # noqa: E402
from eval_shared_data import all_pairs, deepface_pairs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--packs", nargs="+", default=["buffalo_sc", "mtcnn_mbf"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    sets = {
        "deepface": deepface_pairs(args.data),
        "face_recognition": all_pairs(args.data / "face_recognition_by_identity", "*/*"),
        "att_faces": all_pairs(args.data / "att_faces", "*/*.pgm"),
    }
    analyzers = {p: FaceAnalyzer(pack=p) for p in args.packs}
    rows = []
    for set_name, pairs in sets.items():
        photos = sorted({p for a, b, _ in pairs for p in (a, b)})
        emb: dict[str, dict[Path, np.ndarray]] = {p: {} for p in args.packs}
        times: dict[str, list[float]] = {p: [] for p in args.packs}
        for photo in photos:  # interleaved: each photo through every pack before the next photo
            image = load_image(photo)
            for pack, fa in analyzers.items():
                t = time.perf_counter()
                faces = fa.analyze(image)
                times[pack].append(time.perf_counter() - t)
                if faces:
                    emb[pack][photo] = largest_face(faces).embedding
        for pack in args.packs:
            usable = [(a, b, s) for a, b, s in pairs if a in emb[pack] and b in emb[pack]]
            scores = np.array([float(emb[pack][a] @ emb[pack][b]) for a, b, _ in usable])
            same = np.array([s for _, _, s in usable])
            summary = summarize_verification(scores, same, fars=(1e-3,)).to_dict()
            ms = np.array(times[pack]) * 1000
            rows.append(
                {
                    "set": set_name,
                    "pack": pack,
                    "photos": len(photos),
                    "photos_with_face": len(emb[pack]),
                    "pairs": len(pairs),
                    "pairs_scored": len(usable),
                    "accuracy": summary["accuracy"],
                    "eer": summary["eer"],
                    "tar_at_far_1e-3": summary["tar_at_far"][far_key(1e-3)],
                    "ms_per_photo_median": float(np.median(ms)),
                    "ms_min": float(ms.min()),
                    "ms_max": float(ms.max()),
                }
            )
            r = rows[-1]
            print(
                f"{set_name:<17} {pack:<11} faces {r['photos_with_face']}/{r['photos']}  "
                f"pairs {r['pairs_scored']}/{r['pairs']}  acc {r['accuracy']:.4f}  EER {r['eer']:.4f}  "
                f"TAR@1e-3 {r['tar_at_far_1e-3']:.4f}  {r['ms_per_photo_median']:.1f} ms/photo "
                f"(min {r['ms_min']:.1f}, max {r['ms_max']:.1f})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
