"""Fine-tune the default MobileFaceNet on real faces for a domain shift (small faces, or masks), before/after.

Data (../shared/data, used in place; see its README for sources):

* training identities: AT&T/ORL ``s1``..``s30`` (300 photos, 92x112 grayscale), aligned by ``arcface data
  align`` exactly as at inference; 20% of each identity's photos are held out (``data.holdout=0.2``) and
  calibrate the exported model's threshold;
* evaluation identities, disjoint from training: AT&T ``s31``..``s40`` (100 photos), the deepface test photos
  (13 people, 61 colour photos) and the face_recognition examples (5 people, 13 photos).

Domain shift (:mod:`arcface.train.shifts`), applied to the probe of every pair while the gallery photo stays
as it is (enrolled from a good photo, seen in the shifted condition):

* ``--shift lowres`` (default): the face seen at 16x16 and at 12x12 pixels (CCTV, crowds), enlarged back;
  training reduces half of the crops to 10-28 pixels (``data.lowres=0.5``);
* ``--shift mask``: a synthetic mask drawn from the 5 landmarks; training masks half of the crops
  (``data.mask=0.5``).

The run: align, fine-tune ``run.init_from=`` the pack's ``w600k_mbf.onnx`` with ArcFace (30 classes from the
data), export to ONNX with the pack's detector (a pack folder with ``thresholds.json`` calibrated on the
held-out photos), then score every within-set pair of the evaluation identities with the original and the
fine-tuned recognizer: unshifted pairs (no loss allowed beyond 0.3 pt) and shifted-probe pairs (the gain),
and run ``arcface verify --pack EXPORT`` on one shifted pair.

Usage: python benchmarks/finetune_real.py [--data ../shared/data] [--work /tmp/arcface_finetune]
       [--shift lowres|mask] [--steps 150] [--lr 0.002] [--bn auto|batch|frozen] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from arcface.embed.onnx import OnnxEmbedder
from arcface.eval.metrics import summarize_verification
from arcface.models.packs import load_pack
from arcface.pipeline import FaceAnalyzer
from arcface.spec import ModelSpec
from arcface.train.prepare import align_folder
from arcface.train.shifts import draw_mask, low_resolution

ROOT = Path(__file__).resolve().parents[1]
TRAIN_IDS = [f"s{i}" for i in range(1, 31)]
EVAL_ATT = [f"s{i}" for i in range(31, 41)]


def align_sets(data: Path, work: Path, fa: FaceAnalyzer) -> dict[str, Path]:
    out = {}
    for name, folder in (
        ("att", "att_faces"),
        ("deepface", "deepface_by_identity"),
        ("face_recognition", "face_recognition_by_identity"),
    ):
        report = align_folder(data / folder, work / "crops" / name, fa, progress=False)
        print(f"aligned {name}: {report.counts}", file=sys.stderr)
        out[name] = work / "crops" / name
    return out


def link_training_set(att: Path, work: Path) -> Path:
    train = work / "train"
    for ident in TRAIN_IDS:
        (train / ident).mkdir(parents=True, exist_ok=True)
        for f in sorted((att / ident).glob("*.png")):
            dst = train / ident / f.name
            if not dst.exists():
                os.symlink(f, dst)
    return train


def eval_sets(crops: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (uint8 RGB crops, identity labels) of the evaluation identities."""
    sets = {}
    for name, root in crops.items():
        idents = EVAL_ATT if name == "att" else sorted(p.name for p in root.iterdir() if p.is_dir())
        imgs, labels = [], []
        for k, ident in enumerate(idents):
            for f in sorted((root / ident).glob("*.png")):
                imgs.append(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB))
                labels.append(k)
        sets[name] = (np.stack(imgs), np.asarray(labels))
    return sets


def masked(crops: np.ndarray) -> np.ndarray:
    return np.stack([draw_mask(c, rng=np.random.default_rng([7, i])) for i, c in enumerate(crops)])


def conditions(shift: str) -> dict:
    """condition name -> probe transform (None: unshifted)."""
    if shift == "mask":
        return {"clean": None, "masked": masked}
    return {
        "clean": None,
        "16px": lambda c: np.stack([low_resolution(x, 16) for x in c]),
        "12px": lambda c: np.stack([low_resolution(x, 12) for x in c]),
    }


def pair_scores(clean: np.ndarray, mask: np.ndarray | None, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j: clean i vs clean j, or clean i vs masked j."""
    other = clean if mask is None else mask
    sim = clean @ other.T
    iu = np.triu_indices(len(labels), 1)
    return sim[iu], labels[iu[0]] == labels[iu[1]]


def _metrics(s: np.ndarray, y: np.ndarray) -> dict[str, float]:
    v = summarize_verification(s, y, fars=(1e-3, 1e-2), n_folds=None)
    return {
        "accuracy": v.accuracy,
        "eer": v.eer,
        "tar@far=1e-3": v.tar_at_far["1e-03"],
        "tar@far=1e-2": v.tar_at_far["1e-02"],
        "pairs": v.n_pairs,
        "genuine": v.n_genuine,
    }


def evaluate(recognizer: Path, spec: ModelSpec | None, sets: dict, conds: dict) -> dict[str, dict]:
    """condition -> metrics on all sets pooled, plus ``by_set`` (each set alone)."""
    emb = OnnxEmbedder(recognizer, spec)
    scores: dict[str, dict[str, tuple]] = {c: {} for c in conds}
    for name, (crops, labels) in sets.items():
        e_clean = emb.embed(crops)
        for cond, transform in conds.items():
            scores[cond][name] = pair_scores(
                e_clean, None if transform is None else emb.embed(transform(crops)), labels
            )
    out = {}
    for cond, per in scores.items():
        pooled = _metrics(np.concatenate([s for s, _ in per.values()]), np.concatenate([y for _, y in per.values()]))
        out[cond] = {**pooled, "by_set": {name: _metrics(s, y) for name, (s, y) in per.items()}}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/arcface_finetune"))
    ap.add_argument("--shift", default="lowres", choices=("lowres", "mask"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bn", default="auto", choices=("auto", "batch", "frozen"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (args.data / "att_faces").is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    pack = load_pack()
    fa = FaceAnalyzer(pack)
    crops = align_sets(args.data, args.work, fa)
    train = link_training_set(crops["att"], args.work)
    sets = eval_sets(crops)
    tag = f"{args.shift}_{args.bn}_{args.steps}_{args.lr:g}"
    run, export = args.work / f"run_{tag}", args.work / f"export_{tag}"
    conds = conditions(args.shift)
    augment = "data.mask=0.5" if args.shift == "mask" else "data.lowres=0.5"
    cmd = [
        sys.executable, "-m", "arcface", "train", "tiny_cpu",
        f"data.path={train}", augment, "data.holdout=0.2", "data.flip=0.5",
        "model.network=mbf_w600k", "model.embedding_size=512", f"model.bn={args.bn}",
        f"run.init_from={pack.recognizer}", f"run.output={run}", "run.resume=none", "run.progress=false",
        f"run.ckpt_every={args.steps}", "head.margin_list=1,0.5,0", "head.scale=64",
        f"optim.lr={args.lr}", f"optim.batch_size={args.batch}", f"optim.max_steps={args.steps}",
        "optim.warmup_epochs=1", "optim.weight_decay=5e-4",
    ]  # fmt: skip
    t0 = time.perf_counter()
    if not (export / "model.onnx").is_file():  # delete the export folder to train again
        subprocess.run(cmd, check=True)
    train_s = time.perf_counter() - t0
    subprocess.run(
        [sys.executable, "-m", "arcface", "export", "onnx", str(run), str(export / "model.onnx"),
         "--with-detector", str(pack.detector)],
        check=True,
    )  # fmt: skip
    before = evaluate(pack.recognizer, pack.recognizer_spec, sets, conds)
    after = evaluate(export / "model.onnx", ModelSpec.beside(export / "model.onnx"), sets, conds)
    thr = json.loads((export / "thresholds.json").read_text())["recognizers"]
    # one shifted pair through the CLI, the exported folder used as a pack
    a, b = args.work / "probe_a.png", args.work / "probe_b.png"
    att_crops, _ = sets["att"]
    shifted = list(conds.values())[1]
    cv2.imwrite(str(a), cv2.cvtColor(att_crops[0], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), cv2.cvtColor(shifted(att_crops[1:2])[0], cv2.COLOR_RGB2BGR))
    cli = subprocess.run(
        [sys.executable, "-m", "arcface", "verify", str(a), str(b), "--pack", str(export), "--json"],
        capture_output=True,
        text=True,
    )
    result = {
        "shift": args.shift,
        "steps": args.steps,
        "lr": args.lr,
        "bn": args.bn,
        "train_seconds": round(train_s, 1),
        "before": before,
        "after": after,
        "threshold": next(iter(thr.values())),
        "cli_verify": json.loads(cli.stdout) if cli.stdout.strip() else cli.stderr,
    }
    print("| probe | pairs (genuine) | metric | before | after | of which AT&T s31-40 | deepface + face_recognition |")
    print("|---|---|---|---|---|---|---|")
    for cond in conds:
        b, a = before[cond], after[cond]
        for m in ("accuracy", "eer", "tar@far=1e-3", "tar@far=1e-2"):
            att = f"{b['by_set']['att'][m]:.4f} -> {a['by_set']['att'][m]:.4f}"
            other = " / ".join(
                f"{b['by_set'][n][m]:.4f} -> {a['by_set'][n][m]:.4f}" for n in ("deepface", "face_recognition")
            )
            print(f"| {cond} | {b['pairs']} ({b['genuine']}) | {m} | {b[m]:.4f} | {a[m]:.4f} | {att} | {other} |")
    print(f"training: {args.steps} steps in {train_s:.0f} s; exported threshold {result['threshold']['threshold']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
