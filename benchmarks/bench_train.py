"""Training throughput on this CPU: the Trainer's step vs a bare PyTorch loop of the same model and loss.

For MobileFaceNet (``mbf``) and IResNet-50 at batch 64 (112x112 inputs, 1000 classes, SGD momentum 0.9,
ArcFace margin s=64 m=0.5, gradient clipping at 5), prints samples/s of

* ``bare``: ``model(x) -> normalised FC cosines -> CombinedMarginLoss -> cross-entropy -> backward ->
  clip -> SGD step`` written inline;
* ``trainer.train_step``: the same work through :class:`arcface.train.trainer.Trainer` (Partial FC head,
  scheduler, AMP/DDP plumbing inactive on CPU);
* ``trainer.train`` (mbf only): the full loop including the data pipeline (decode-free in-memory images,
  augmentation, normalisation, DataLoader, logging),

and the overhead ratio ``bare / trainer`` (1.00 = no overhead). Rates are computed from the process CPU
time (``time.process_time``) as well as wall time: on a shared machine the CPU-time figures are the stable
ones (exact with ``--threads 1``). Run: ``python benchmarks/bench_train.py`` (``--steps N``, ``--repeats R``,
``--models mbf``, ``--threads T``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from arcface.nn import CombinedMarginLoss, create_model
from arcface.train.config import build_config
from arcface.train.data import ArrayDataset
from arcface.train.trainer import Trainer

CLASSES = 1000
BATCH = 64


def _rate(fn: Callable[[], None], steps: int) -> tuple[float, float]:
    """(samples/s by CPU time, samples/s by wall time) of ``steps`` calls of ``fn``."""
    c, w = time.process_time(), time.perf_counter()
    for _ in range(steps):
        fn()
    return steps * BATCH / (time.process_time() - c), steps * BATCH / (time.perf_counter() - w)


def bare_loop(name: str, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = create_model(name, num_features=512)
    weight = torch.nn.Parameter(torch.normal(0, 0.01, (CLASSES, 512)))
    margin = CombinedMarginLoss(64.0, 1.0, 0.5, 0.0)
    opt = torch.optim.SGD([*model.parameters(), weight], lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()

    def step() -> None:
        emb = model(x)
        cos = F.normalize(emb, dim=1) @ F.normalize(weight, dim=1).t()
        loss = F.cross_entropy(margin(cos.clamp(-1, 1), y), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    return _rate(step, steps)


def make_trainer(name: str, out: str, n_images: int = BATCH * 4, extra: tuple[str, ...] = ()) -> Trainer:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n_images, 112, 112, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, n_images)
    labels[:2] = [0, CLASSES - 1]
    cfg = build_config(
        "ms1mv3_r50",
        [
            f"model.network={name}",
            f"batch_size={BATCH}",
            f"head.num_classes={CLASSES}",
            "amp=none",
            "progress=false",
            "resume=none",
            "ckpt_every=0",
            "val_every=0",
            "num_workers=0",
            "tensorboard=false",
            f"run.output={out}",
            *extra,
        ],
    )
    return Trainer(cfg, ArrayDataset(imgs, labels))


def trainer_step(name: str, x: torch.Tensor, y: torch.Tensor, steps: int, out: str) -> tuple[float, float]:
    tr = make_trainer(name, out)
    tr.train_step(x, y)
    rate = _rate(lambda: tr.train_step(x, y), steps)
    tr.close()
    return rate


def trainer_loop(name: str, steps: int, out: str) -> tuple[float, float]:
    tr = make_trainer(name, out, n_images=BATCH * (steps + 1), extra=(f"max_steps={steps + 1}",))
    tr.train(stop_at_step=1)  # warm-up
    rate = _rate(tr.train, 1)
    tr.close()
    return rate[0] * steps, rate[1] * steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="mbf,iresnet50")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, {CLASSES} classes")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, 112, 112, generator=g)
    y = torch.randint(0, CLASSES, (BATCH,), generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            bare, step, loop = [], [], []
            for r in range(args.repeats):  # interleaved, best of R, to share load fluctuations fairly
                bare.append(bare_loop(name, x, y, args.steps))
                step.append(trainer_step(name, x, y, args.steps, f"{tmp}/{name}{r}"))
                if name == "mbf":
                    loop.append(trainer_loop(name, args.steps, f"{tmp}/{name}loop{r}"))
            for i, clock in enumerate(("cpu-time", "wall-time")):
                b, s = max(v[i] for v in bare), max(v[i] for v in step)
                line = (
                    f"{name:<10} [{clock:>9}] bare {b:6.2f} samples/s | trainer.train_step {s:6.2f} samples/s "
                    f"(overhead x{b / s:.3f})"
                )
                if loop:
                    lp = max(v[i] for v in loop)
                    line += f" | trainer.train incl. data pipeline {lp:6.2f} samples/s (x{b / lp:.3f})"
                print(line, flush=True)


if __name__ == "__main__":
    main()
