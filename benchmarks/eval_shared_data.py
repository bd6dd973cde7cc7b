"""Verification figures of the default pack on the labelled photos of ../shared/data.

Sets (pairs are scored with the largest detected face of each photo, aligned, cosine similarity):

* ``deepface``: the 520 labelled pairs of ``deepface_pairs.csv`` (files found through ``deepface_labels.csv``
  in ``deepface_by_identity/personNN/``);
* ``face_recognition``: all pairs of ``face_recognition_by_identity/<name>/*``;
* ``att_faces``: all pairs of the 400 AT&T/ORL faces (92x112 grayscale, ``sN/K.pgm``);
* ``pooled``: the three together (used for the calibrated threshold).

Printed per set: 10-fold accuracy +- std and its threshold, EER, TAR@FAR, and the calibrated cosine
threshold (lowest with FAR <= target) - with flip test-time augmentation and without it (the baseline of
this run), plus images without a detected face and the throughput.

Usage: python benchmarks/eval_shared_data.py [--data ../shared/data] [--model PACK] [--json out.json]
       [--plot roc.png] [--far 1e-3]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from arcface.eval.metrics import summarize_verification, threshold_at_far
from arcface.eval.models import embed_crops, resolve_analyzer
from arcface.eval.report import markdown_table, plot_roc, write_json

ROOT = Path(__file__).resolve().parents[1]
FARS = (1e-3, 1e-2, 1e-1)


def deepface_pairs(data: Path) -> list[tuple[Path, Path, bool]]:
    ident = {r["file"]: r["identity"] for r in csv.DictReader(open(data / "deepface_labels.csv"))}
    base = data / "deepface_by_identity"
    out = []
    for r in csv.DictReader(open(data / "deepface_pairs.csv")):
        a = base / ident[r["file_x"]] / r["file_x"]
        b = base / ident[r["file_y"]] / r["file_y"]
        out.append((a, b, r["same"].strip() == "1"))
    return out


def all_pairs(folder: Path, pattern: str) -> list[tuple[Path, Path, bool]]:
    files = sorted(q for q in folder.glob(pattern) if q.is_file())
    return [(a, b, a.parent == b.parent) for a, b in itertools.combinations(files, 2)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", default=None, help="pack name or directory (default pack)")
    ap.add_argument("--far", type=float, default=1e-3, help="calibration FAR target")
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--plot", type=Path, help="ROC plot of the sets (flip TTA)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: not found", file=sys.stderr)
        return 2
    sets = {
        "deepface": deepface_pairs(args.data),
        "face_recognition": all_pairs(args.data / "face_recognition_by_identity", "*/*"),
        "att_faces": all_pairs(args.data / "att_faces", "s*/*.pgm"),
    }
    t0 = time.perf_counter()
    analyzer = resolve_analyzer(args.model)
    from arcface.align import align_faces
    from arcface.imageio import load_image

    images = sorted({p for pairs in sets.values() for a, b, _ in pairs for p in (a, b)})
    crops, index, no_face = [], {}, []
    t1 = time.perf_counter()
    for q in images:
        img = load_image(q)
        det = analyzer.detector.detect(img)
        if len(det) == 0:
            no_face.append(str(q.relative_to(args.data)))
            continue
        b = det.boxes
        i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        index[q] = len(crops)
        crops.append(align_faces(img, det.kps[i : i + 1], 112)[0])
    t_det = time.perf_counter() - t1
    emb = {}
    t_emb = {}
    for flip in (False, True):
        t1 = time.perf_counter()
        emb[flip] = embed_crops(analyzer.embedder, crops, batch_size=64, flip=flip)
        t_emb[flip] = time.perf_counter() - t1
    print(
        f"{len(images)} images, {len(no_face)} without a detected face; detection+alignment "
        f"{len(images) / t_det:.1f} img/s; embedding {len(crops) / t_emb[False]:.1f} img/s "
        f"(flip TTA {len(crops) / t_emb[True]:.1f} img/s, {t_emb[True] / t_emb[False]:.2f}x the time)"
    )
    if no_face:
        print("no face:", ", ".join(no_face[:10]) + (" ..." if len(no_face) > 10 else ""))

    rows, results, curves = [], {}, []
    pooled: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
    names = list(sets) + ["pooled"]
    for name in names:
        for flip in (True, False):
            if name == "pooled":
                s, y = (np.concatenate(v) for v in pooled[flip])
                n_dropped = sum(results[(n, flip)]["pairs_dropped"] for n in sets)
            else:
                keep = [(a, b, same) for a, b, same in sets[name] if a in index and b in index]
                n_dropped = len(sets[name]) - len(keep)
                e = emb[flip]
                s = np.array([float(e[index[a]] @ e[index[b]]) for a, b, _ in keep])
                y = np.array([same for *_, same in keep], bool)
                pooled[flip][0].append(s)
                pooled[flip][1].append(y)
            summ = summarize_verification(s, y, fars=FARS, n_folds=10)
            cal = threshold_at_far(s, y, args.far)
            d = summ.to_dict()
            d.update(
                {
                    "model": f"{analyzer.pack.name}{' +flip' if flip else ''}",
                    "dataset": name,
                    "pairs_dropped": n_dropped,
                    "calibrated": cal.to_dict(),
                }
            )
            results[(name, flip)] = d
            rows.append(d)
            if flip:
                curves.append((name, summ.roc.fpr, summ.roc.tpr))
    print()
    print(markdown_table(rows))
    print()
    print(f"calibrated cosine thresholds at FAR <= {args.far:g} (flip TTA / no flip):")
    for name in names:
        a, b = results[(name, True)]["calibrated"], results[(name, False)]["calibrated"]
        print(
            f"  {name:17s} {results[(name, True)]['n_pairs']:6d} pairs ({results[(name, True)]['n_genuine']} genuine): "
            f"thr {a['threshold']:.4f} (FAR {a['far']:.4f}, TAR {a['tar']:.4f}) / "
            f"thr {b['threshold']:.4f} (FAR {b['far']:.4f}, TAR {b['tar']:.4f})"
        )
    print(f"total {time.perf_counter() - t0:.1f} s")
    if args.json:
        write_json(
            args.json, {"results": rows, "no_face": no_face, "recognizer_sha256": analyzer.pack.recognizer_sha256}
        )
    if args.plot:
        plot_roc(curves, args.plot, title=f"{analyzer.pack.name} on shared/data (flip TTA)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
