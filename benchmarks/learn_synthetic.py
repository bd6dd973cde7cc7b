"""Learning check on synthetic identities, and the sub-center cleaning experiment.

1. Verification: train the ``tiny_cpu`` preset on N synthetic identities (random smooth textures under
   shifts, rotations, brightness changes and noise; see :mod:`arcface.train.synthetic`), then measure the
   10-fold verification accuracy on pairs of *held-out* identities (never seen in training).
2. Cleaning: the same kind of data with a fraction of labels corrupted (a sample moved to another
   identity), trained with K=3 sub-centres; the dominant-sub-centre rule (drop samples whose angle to
   their class's dominant sub-centre exceeds the threshold) should find the corrupted samples with
   precision and recall >= 0.9.

Usage::

    python benchmarks/learn_synthetic.py                      # both, full size (a few minutes on CPU)
    python benchmarks/learn_synthetic.py --ids 100 --epochs 4 # smaller
    python benchmarks/learn_synthetic.py --skip-clean
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from arcface.train.clean import clean_from_arrays
from arcface.train.config import build_config
from arcface.train.data import ArrayDataset
from arcface.train.synthetic import make_identities, verification_pairs
from arcface.train.trainer import Trainer
from arcface.train.verification import PairSet, VerificationCallback


def run_verification(args: argparse.Namespace, out: str) -> dict:
    t0 = time.perf_counter()
    imgs, labels = make_identities(args.ids, args.per_id, seed=args.seed)
    vimgs, vlabels = make_identities(args.val_ids, 6, seed=args.seed + 1)
    pimgs, issame = verification_pairs(vimgs, vlabels, args.pairs, seed=args.seed + 2)
    gen_s = time.perf_counter() - t0
    cfg = build_config(
        "tiny_cpu",
        [f"run.output={out}", "resume=none", f"epochs={args.epochs}", "progress=false", "ckpt_every=0"]
        + [f"val_every={10**9}"]
        + args.override,
    )
    val = VerificationCallback([PairSet("synthetic_heldout", pimgs, issame)], every=10**9)
    trainer = Trainer(cfg, ArrayDataset(imgs, labels), val)
    before = val.evaluate(trainer.backbone)["val/synthetic_heldout"]
    t1 = time.perf_counter()
    summary = trainer.train()
    train_s = time.perf_counter() - t1
    after = val.evaluate(trainer.backbone)["val/synthetic_heldout"]
    trainer.close()
    return {
        "identities": args.ids,
        "images": len(imgs),
        "heldout_identities": args.val_ids,
        "pairs": args.pairs,
        "steps": summary["steps"],
        "final_loss": round(summary["loss"], 4),
        "accuracy_untrained": round(before, 4),
        "accuracy_trained": round(after, 4),
        "train_seconds": round(train_s, 1),
        "samples_per_s": round(summary["samples_per_s"], 1),
        "generate_seconds": round(gen_s, 1),
    }


def run_cleaning(args: argparse.Namespace, out: str) -> dict:
    imgs, labels = make_identities(args.clean_ids, args.clean_per_id, seed=args.seed + 10)
    rng = np.random.default_rng(args.seed + 11)
    noisy = labels.copy()
    flip = rng.random(len(labels)) < args.noise
    shift = rng.integers(1, args.clean_ids, size=int(flip.sum()))
    noisy[flip] = (labels[flip] + shift) % args.clean_ids
    cfg = build_config(
        "tiny_cpu",
        [f"run.output={out}", "resume=none", f"epochs={args.clean_epochs}", "progress=false", "ckpt_every=0"]
        + ["head.subcenters=3", "val_every=0"]
        # Regularisation keeps the network from memorising the corrupted labels into the dominant sub-centre.
        + ["data.crop=0.1", "data.color=0.2", "model.dropout=0.3"]
        + args.override,
    )
    trainer = Trainer(cfg, ArrayDataset(imgs, noisy))
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    weight = trainer.head.weight.detach()
    result = clean_from_arrays(trainer.backbone, weight, 3, imgs, noisy, args.threshold_deg)
    dropped = ~result.keep
    tp = int((dropped & flip).sum())
    precision = tp / max(1, int(dropped.sum()))
    recall = tp / max(1, int(flip.sum()))
    trainer.close()
    sweep = {}
    for thr in (60, 65, 70, 75, 80, 85):
        d = result.angles > np.radians(thr)
        sweep[thr] = [
            round(int((d & flip).sum()) / max(1, int(d.sum())), 3),
            round(int((d & flip).sum()) / max(1, int(flip.sum())), 3),
        ]
    return {
        "identities": args.clean_ids,
        "images": len(imgs),
        "corrupted_fraction": round(float(flip.mean()), 4),
        "threshold_deg": args.threshold_deg,
        "dropped": int(dropped.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "median_angle_clean_deg": round(float(np.degrees(np.median(result.angles[~flip]))), 1),
        "median_angle_corrupt_deg": round(float(np.degrees(np.median(result.angles[flip]))), 1),
        "precision_recall_by_threshold_deg": sweep,
        "train_seconds": round(train_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=300)
    ap.add_argument("--per-id", type=int, default=10)
    ap.add_argument("--val-ids", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--clean-ids", type=int, default=100)
    ap.add_argument("--clean-per-id", type=int, default=30)
    ap.add_argument("--clean-epochs", type=int, default=8)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--threshold-deg", type=float, default=75.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip-verify", action="store_true")
    ap.add_argument("--skip-clean", action="store_true")
    ap.add_argument("override", nargs="*", help="extra config overrides key=value")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_verify:
            report["verification"] = run_verification(args, f"{tmp}/verify")
            print(json.dumps({"verification": report["verification"]}, indent=2), flush=True)
        if not args.skip_clean:
            report["cleaning"] = run_cleaning(args, f"{tmp}/clean")
            print(json.dumps({"cleaning": report["cleaning"]}, indent=2), flush=True)


if __name__ == "__main__":
    main()
