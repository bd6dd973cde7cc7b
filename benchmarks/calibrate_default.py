"""Calibrate the default pack's cosine threshold on the real labelled photos in ../shared/data.

Embeds every photo of the three labelled sets (largest face per photo), forms all within-set pairs
(same identity = genuine, else impostor), and prints the score distributions, the cosine threshold at
several false accept rates, and the accuracy of each. ``--write`` stores the FAR=1e-3 threshold with its
provenance in src/arcface/data/thresholds.json.

    python benchmarks/calibrate_default.py [--write]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np

from arcface import FaceAnalyzer
from arcface.errors import NoFaceError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def labelled_sets() -> dict[str, list[tuple[Path, str]]]:
    sets: dict[str, list[tuple[Path, str]]] = {}
    sets["deepface"] = [(p, p.parent.name) for p in sorted((DATA / "deepface_by_identity").glob("*/*.jpg"))]
    sets["face_recognition"] = [
        (p, p.parent.name) for p in sorted((DATA / "face_recognition_by_identity").glob("*/*")) if p.is_file()
    ]
    sets["att_faces"] = [(p, p.parent.name) for p in sorted((DATA / "att_faces").glob("s*/*.pgm"))]
    return sets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--far", type=float, default=1e-3)
    args = ap.parse_args()
    fa = FaceAnalyzer(runtime="onnxruntime", precision="f32")  # the reference engine thresholds are calibrated with
    genuine, impostor, missed = [], [], {}
    for name, items in labelled_sets().items():
        faces = fa.analyze_many([p for p, _ in items], progress=True)
        embs, labels = [], []
        for (p, ident), fs in zip(items, faces):
            if not fs:
                missed.setdefault(name, []).append(p.name)
                continue
            embs.append(max(fs, key=lambda f: f.area).embedding)
            labels.append(ident)
        e = np.stack(embs)
        lab = np.array(labels)
        sim = e @ e.T
        iu = np.triu_indices(len(e), 1)
        same = lab[iu[0]] == lab[iu[1]]
        genuine.append(sim[iu][same])
        impostor.append(sim[iu][~same])
        print(
            f"{name}: {len(items)} photos, {len(e)} with a face, {same.sum()} genuine / {(~same).sum()} impostor pairs,"
            f" genuine mean {sim[iu][same].mean():.3f}, impostor mean {sim[iu][~same].mean():.3f}"
        )
    g, i = np.concatenate(genuine), np.concatenate(impostor)
    print(f"all: {len(g)} genuine, {len(i)} impostor pairs; missed faces: {missed}")
    for far in (1e-1, 1e-2, 1e-3, 1e-4):
        t = float(np.quantile(i, 1 - far, method="higher"))
        print(
            f"FAR {far:g}: cosine threshold {t:.4f}, TAR {np.mean(g >= t):.4f}, "
            f"accuracy {(np.sum(g >= t) + np.sum(i < t)) / (len(g) + len(i)):.4f}"
        )
    # deepface's own labelled pairs
    labels = {r["file"]: r["identity"] for r in csv.DictReader(open(DATA / "deepface_labels.csv"))}
    pairs = list(csv.DictReader(open(DATA / "deepface_pairs.csv")))
    t = float(np.quantile(i, 1 - args.far, method="higher"))
    ok = 0
    for r in pairs:
        try:
            res = fa.verify(
                DATA / "deepface_by_identity" / labels[r["file_x"]] / r["file_x"],
                DATA / "deepface_by_identity" / labels[r["file_y"]] / r["file_y"],
                threshold=t,
            )
        except NoFaceError:
            continue
        ok += int(res.same == (r["same"] == "1"))
    print(f"deepface_pairs.csv: {ok}/{len(pairs)} correct at threshold {t:.4f}")
    if args.write:
        path = ROOT / "src" / "arcface" / "data" / "thresholds.json"
        table = json.loads(path.read_text())
        previous = table.setdefault("recognizers", {}).get(fa.pack.recognizer_sha256, {})
        entry = table["recognizers"][fa.pack.recognizer_sha256] = {
            "model": fa.pack.recognizer.name,
            "threshold": round(t, 4),
            "far": args.far,
            "provenance": (
                f"FAR={args.far:g} on {len(i)} impostor / {len(g)} genuine within-set pairs of real photos "
                f"(deepface test set, face_recognition examples, AT&T faces), {fa.engine.engine}, "
                f"{dt.date.today().isoformat()}, benchmarks/calibrate_default.py"
            ),
        }
        if previous.get("threshold") == entry["threshold"] and "agreement" in previous:
            entry["agreement"] = previous["agreement"]  # measured at this threshold (engine_agreement.py)
        path.write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {path}")
        if "agreement" in previous and "agreement" not in entry:
            print("the engines' agreement records were measured at the old threshold and were dropped: until")
            print("python benchmarks/engine_agreement.py --write measures them again, auto keeps f32")


if __name__ == "__main__":
    main()
