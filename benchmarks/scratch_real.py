"""From scratch on real faces: a small CNN trained from random weights with ArcFace learns to verify people it
has never seen.

Data (../shared/data, used in place): AT&T/ORL faces aligned by ``arcface data align`` (the pipeline's detector
and alignment); training identities ``s1``..``s30`` (300 photos), evaluation on the disjoint ``s31``..``s40``
(100 photos, all 4,950 pairs, 450 genuine). The metric is the equal error rate and ROC AUC on those pairs
(chance: EER 50%, AUC 0.5); the random-weight network is the baseline, measured in the same run.

Writes a learning curve (training loss and held-out EER against the step) as a PNG.

Usage: python benchmarks/scratch_real.py [--data ../shared/data] [--work /tmp/arcface_scratch]
       [--steps 600] [--width 32] [--png learning_curve.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from arcface.eval.metrics import eer, roc_curve
from arcface.pipeline import FaceAnalyzer
from arcface.train.config import build_config
from arcface.train.prepare import align_folder
from arcface.train.trainer import Trainer
from arcface.train.verification import embed_images
from finetune_real import EVAL_ATT, link_training_set  # noqa: E402 (a sibling script: same split of AT&T)

ROOT = Path(__file__).resolve().parents[1]


def heldout_metrics(backbone: torch.nn.Module, imgs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    emb = embed_images(backbone, imgs, flip=True)
    sim = emb @ emb.T
    iu = np.triu_indices(len(labels), 1)
    roc = roc_curve(sim[iu], labels[iu[0]] == labels[iu[1]])
    return {"eer": eer(roc)[0], "auc": float(np.trapezoid(roc.tpr, roc.fpr))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/arcface_scratch"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--png", type=Path, default=Path("learning_curve.png"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (args.data / "att_faces").is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    crops = args.work / "att_crops"
    align_folder(args.data / "att_faces", crops, FaceAnalyzer(), progress=False)
    train = link_training_set(crops, args.work)  # s1-s30, as finetune_real.py
    paths = [(f, i) for i, ident in enumerate(EVAL_ATT) for f in sorted((crops / ident).glob("*.png"))]
    imgs = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f, _ in paths])
    labels = np.array([i for _, i in paths])
    cfg = build_config(
        "tiny_cpu",
        [f"data.path={train}", f"model.width={args.width}", f"run.output={args.work / 'run'}", "run.resume=none",
         "run.progress=false", "run.ckpt_every=0", f"optim.max_steps={args.steps}", "optim.batch_size=64",
         "optim.lr=0.1", "optim.warmup_epochs=2", "data.flip=0.5", "data.crop=0.1", "data.color=0.2"],
    )  # fmt: skip
    t = Trainer(cfg)
    curve = [(0, float("nan"), heldout_metrics(t.backbone, imgs, labels))]
    print(f"step 0 (random weights): held-out EER {curve[0][2]['eer']:.4f}, AUC {curve[0][2]['auc']:.4f}")
    t0 = time.perf_counter()

    def on_step(tr: Trainer, loss: float) -> None:
        if tr.step % args.every == 0 or tr.step == args.steps:
            m = heldout_metrics(tr.backbone, imgs, labels)
            tr._train_mode()
            curve.append((tr.step, loss, m))
            print(f"step {tr.step}: loss {loss:.3f}, held-out EER {m['eer']:.4f}, AUC {m['auc']:.4f}", flush=True)

    t.train(on_step=on_step)
    seconds = time.perf_counter() - t0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [c[0] for c in curve]
    ax.plot(steps[1:], [c[1] for c in curve[1:]], "o-", color="tab:blue", label="training loss (ArcFace)")
    ax.set_xlabel("step (batch 64)")
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps, [100 * c[2]["eer"] for c in curve], "s-", color="tab:red", label="held-out EER")
    ax2.set_ylabel("EER on 10 unseen people (%)", color="tab:red")
    ax2.set_ylim(0, max(55, 100 * curve[0][2]["eer"] + 5))
    ax.set_title(f"tiny CNN (width {args.width}) from random weights, AT&T s1-s30 -> s31-s40")
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    result = {
        "steps": args.steps,
        "width": args.width,
        "train_seconds": round(seconds, 1),
        "random_weights": curve[0][2],
        "trained": curve[-1][2],
        "curve": [{"step": s, "loss": lo, **m} for s, lo, m in curve],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
