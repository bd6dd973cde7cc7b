"""Hard photos: faces found, by which stage, and verification before/after, on the real photos of ../shared/data.

Sets (all made from ../shared/data's labelled photos, nothing downloaded):
- ``tight-X``: each deepface / face_recognition photo cropped to a square of X times its face box (X = 1.2, 1.0,
  0.85, 0.7: at 0.7 the chin and forehead are cut), the way celebrity sets (CFP, CelebA crops) come;
- ``att``: the AT&T crops (92x112 grey, the face fills the photo);
- ``blur-S``: the deepface / face_recognition photos blurred (Gaussian sigma S px): low-quality captures;
- with ``--cmu DIR`` (the ``faces`` folder of CMU Face Images, see :mod:`arcface.eval.multi_pose`; its manifest
  digest is printed and compared with the copy the README measured): ``cmu-frontal`` (straight views, all pairs),
  ``cmu-turned`` (straight against left/right views, about 60-90 degrees: CFP's frontal-profile protocol) and
  ``cmu-up`` (straight against looking up), on the 624 full-size photos of 20 people, and ``cmu-turned-tight``
  (``cmu-turned`` cropped to 1.0x the face box, like CFP's tightly cropped profile photos).

Detector configurations:
- ``plain``: one 640 canvas, no retry (a plain SCRFD letterbox, insightface's default);
- ``before``: one 640 canvas + the padded retry (this library before multi-resolution detection);
- ``auto``: 640 + 160 canvases (each face from the largest canvas that finds it), padded retry, low-threshold
  stage (the default now);
- ``auto+centre``: ``auto`` plus the opt-in centre crop (``center_crop=0.9``).

For each set and configuration: photos with a face, by stage; verification accuracy at the calibrated threshold
on all within-set pairs of the labelled photos (a photo without a face makes its pairs errors), the accuracy at
the best threshold for that set (hindsight: how much is the threshold, how much the embeddings), and detection
time per photo. ``python benchmarks/bench_hard_photos.py [--sets tight-0.85,att] [--cmu DIR]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from arcface import FaceAnalyzer
from arcface.eval.metrics import best_threshold
from arcface.eval.multi_pose import CMU_FACES_SHA256, load_multi_pose, manifest_digest, pose_pairs
from arcface.imageio import load_image
from arcface.runtime import cpu_info

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def labelled_photos() -> tuple[list[np.ndarray], list[str], list[np.ndarray], list[str]]:
    """(colour photos, their identities, AT&T crops, their identities)."""
    import csv

    colour, ids = [], []
    labels = {r["file"]: r["identity"] for r in csv.DictReader(open(DATA / "deepface_labels.csv"))}
    for p in sorted((DATA / "deepface_by_identity").rglob("*.jpg")):
        colour.append(load_image(p))
        ids.append("df-" + labels.get(p.name, p.parent.name))
    for p in sorted((DATA / "face_recognition_by_identity").rglob("*")):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
            colour.append(load_image(p))
            ids.append("fr-" + p.parent.name)
    att = sorted((DATA / "att_faces").rglob("*.pgm"))
    return colour, ids, [load_image(p) for p in att], ["att-" + p.parent.name for p in att]


def tight_crop(img: np.ndarray, box: np.ndarray, factor: float) -> np.ndarray:
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, factor * max(x2 - x1, y2 - y1) / 2
    h, w = img.shape[:2]
    a, b = max(0, int(cy - half)), min(h, int(cy + half))
    c, d = max(0, int(cx - half)), min(w, int(cx + half))
    return np.ascontiguousarray(img[a:b, c:d])


#: A set: photos, their identities, and the pairs to score (None: all within-set pairs).
PhotoSet = tuple[list[np.ndarray], list[str], list[tuple[int, int]] | None]


def make_sets(names: list[str], reference: FaceAnalyzer) -> dict[str, PhotoSet]:
    if not names:
        return {}
    colour, ids, att, att_ids = labelled_photos()
    boxes = [max(reference.analyze(im, embed=False), key=lambda f: f.area).bbox for im in colour]
    sets: dict[str, PhotoSet] = {}
    for name in names:
        if name == "att":
            sets[name] = (att, att_ids, None)
        elif name.startswith("tight-"):
            f = float(name.split("-")[1])
            sets[name] = ([tight_crop(im, b, f) for im, b in zip(colour, boxes)], ids, None)
        elif name.startswith("blur-"):
            s = float(name.split("-")[1])
            sets[name] = ([cv2.GaussianBlur(im, (0, 0), s) for im in colour], ids, None)
        else:
            raise SystemExit(f"unknown set {name}")
    return sets


def cmu_sets(root: Path, reference: FaceAnalyzer) -> dict[str, PhotoSet]:
    """Frontal, frontal-turned and frontal-up pairs of CMU Face Images (full size), each set holding only the
    photos its pairs use; ``cmu-turned-tight`` is ``cmu-turned`` with every photo cropped to a square of 1.0x its
    face box (``reference``'s largest face), the way CFP's profile photos come."""
    photos = load_multi_pose(root)
    digest = manifest_digest(photos, root)
    same = "the copy the README measured" if digest == CMU_FACES_SHA256 else f"NOT the README's ({CMU_FACES_SHA256})"
    print(f"CMU Face Images: {len(photos)} photos, manifest sha256 {digest}: {same}")
    decoded = {p.path: load_image(p.path) for p in photos}  # each photo read once; the straight ones serve 3 sets
    sets: dict[str, PhotoSet] = {}
    for name, other in (("cmu-frontal", {"straight"}), ("cmu-turned", {"left", "right"}), ("cmu-up", {"up"})):
        keep = [p for p in photos if p.pose in other | {"straight"}]
        pairs = pose_pairs(keep, {"straight"}, other)
        sets[name] = ([decoded[p.path] for p in keep], [p.identity for p in keep], pairs)
    images, ids, pairs = sets["cmu-turned"]
    tight = []
    for im in images:
        faces = reference.analyze(im, embed=False)
        tight.append(tight_crop(im, max(faces, key=lambda f: f.area).bbox, 1.0) if faces else im)
    sets["cmu-turned-tight"] = (tight, ids, pairs)
    return sets


def accuracy(
    embs: list[np.ndarray | None], ids: list[str], threshold: float, pairs: list[tuple[int, int]] | None = None
) -> tuple[float, float, int]:
    """(accuracy at ``threshold``, accuracy at the best threshold in hindsight, number of pairs) over ``pairs``
    (default: all within-set pairs); a photo without a face makes its pairs errors at both thresholds."""
    n = len(ids)
    todo = pairs if pairs is not None else [(i, j) for i in range(n) for j in range(i + 1, n)]
    scores, same = [], []
    for i, j in todo:
        if embs[i] is None or embs[j] is None:
            continue
        scores.append(float(embs[i] @ embs[j]))
        same.append(ids[i] == ids[j])
    s, y = np.asarray(scores), np.asarray(same, bool)
    right = int(((s >= threshold) == y).sum())
    best = best_threshold(s, y)[1] * len(s) if len(s) else 0.0  # right pairs at the best threshold
    return right / len(todo), best / len(todo), len(todo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="tight-1.2,tight-1.0,tight-0.85,tight-0.7,att,blur-30,blur-40")
    ap.add_argument("--cmu", type=Path, help="CMU Face Images' faces folder: adds the cmu-* sets")
    args = ap.parse_args()
    configs = {
        "plain": FaceAnalyzer(det_sizes="single"),
        "before": FaceAnalyzer(det_sizes="single"),
        "auto": FaceAnalyzer(),
        "auto+centre": FaceAnalyzer(center_crop=0.9),
    }
    configs["plain"].detector.pad_retry, configs["plain"].detector.fallback_threshold = False, None
    configs["before"].detector.fallback_threshold = None
    threshold = configs["auto"].threshold.value
    sets = make_sets([n for n in args.sets.split(",") if n], configs["auto"])
    if args.cmu is not None:
        sets.update(cmu_sets(args.cmu, configs["auto"]))
    print(f"CPU: {cpu_info().describe()}; threshold {threshold:.4f} (cosine)")
    print(
        f"{'set':16s} {'photos':>6s} {'config':12s} {'found':>6s}  stages{' ' * 42} {'accuracy':>9s} {'best':>7s}"
        f" {'ms/photo':>9s}"
    )
    for name, (images, ids, pairs) in sets.items():
        for cname, fa in configs.items():
            t = time.perf_counter()
            per = fa.analyze_many(images)
            ms = (time.perf_counter() - t) / len(images) * 1e3
            chosen = [max(f, key=lambda x: x.area) if f else None for f in per]
            stages = Counter(f.path for f in chosen if f is not None)
            embs = [None if f is None else f.embedding for f in chosen]
            acc, best, n_pairs = accuracy(embs, ids, threshold, pairs)
            found = sum(f is not None for f in chosen)
            st = ", ".join(f"{k} {v}" for k, v in sorted(stages.items()))
            print(f"{name:16s} {len(images):6d} {cname:12s} {found:6d}  {st:48s} {acc:9.4f} {best:7.4f} {ms:9.1f}")
        print(f"{'':16s} ({n_pairs} {'within-set' if pairs is None else 'listed'} pairs)")
    # time of the stages on ordinary photos: the three wheel photos, rounds interleaved
    from arcface.models.packs import builtin_dir

    wheel = [load_image(builtin_dir() / n) for n in ("yaoming.jpg", "gdp.jpg", "players.jpg")]
    ra, rb = [], []
    for _ in range(7):
        for fa, out in ((configs["auto"], ra), (configs["before"], rb)):
            t = time.perf_counter()
            for _ in range(3):
                fa.analyze_many(wheel)
            out.append(time.perf_counter() - t)
    ratios = [a / b for a, b in zip(ra, rb)]
    print(
        f"\nwheel photos end to end, auto / before: {statistics.median(ratios):.3f}x "
        f"({min(ratios):.3f}-{max(ratios):.3f}), 7 interleaved rounds"
    )


if __name__ == "__main__":
    main()
