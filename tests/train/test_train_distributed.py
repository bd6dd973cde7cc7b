"""Two CPU processes (gloo, 127.0.0.1) take the same optimiser steps as one process on the global batch."""

from __future__ import annotations

import os

import pytest

from net import free_port

torch = pytest.importorskip("torch")

from arcface.train import checkpoint as ckpt  # noqa: E402
from arcface.train.config import build_config  # noqa: E402
from arcface.train.data import ArrayDataset  # noqa: E402
from arcface.train.synthetic import make_identities  # noqa: E402

WORLD = 2
PER_RANK = 8
# GroupNorm backbone: per-sample statistics, so splitting a batch over processes cannot change outputs
# (with BatchNorm each process would normalise with its own half-batch statistics, as arcface_torch does).
OVERRIDES = [
    "model.width=8",
    "model.embedding_size=32",
    "model.norm=group",
    f"batch_size={PER_RANK}",
    "progress=false",
    "resume=none",
    "ckpt_every=0",
    "momentum=0.9",
    "lr=0.1",
    "clip_grad=0",
]


def _data():
    imgs, labels = make_identities(6, 6, seed=5)  # 6 classes: 3 per rank
    ds = ArrayDataset(imgs, labels)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    return ds, x, torch.as_tensor(labels)


def _batches(x, y):
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        idx = torch.randperm(len(y), generator=g)[: WORLD * PER_RANK]
        yield x[idx], y[idx]


def _worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(WORLD)}
    )
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    from arcface.train.synthetic import verification_pairs
    from arcface.train.trainer import Trainer
    from arcface.train.verification import PairSet, VerificationCallback

    ds, x, y = _data()
    cfg = build_config("tiny_cpu", [*OVERRIDES, f"run.output={tmp}/ddp"])
    val = None
    if rank == 0:  # only rank 0 evaluates; the other rank must not deadlock meanwhile
        pimgs, issame = verification_pairs(ds.images, ds.labels, 20, seed=0)
        val = VerificationCallback([PairSet("pairs", pimgs, issame)], every=3)
    trainer = Trainer(cfg, ds, verification=val)
    assert trainer.ctx.world_size == WORLD and trainer.head_sharded
    init = torch.load(f"{tmp}/init.pt")
    trainer.backbone.load_state_dict(init["backbone"])
    head = trainer.head
    with torch.no_grad():
        head.weight.copy_(init["head"][head.class_start : head.class_start + head.num_local])
    losses = []
    for bx, by in _batches(x, y):
        sl = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        losses.append(trainer.train_step(bx[sl], by[sl]))
    torch.save(
        {"backbone": trainer.backbone.state_dict(), "head": head.weight.detach().clone(), "losses": losses},
        f"{tmp}/rank{rank}.pt",
    )
    # The training loop itself: sharded sampler, rank-0 evaluation, per-rank checkpoint files.
    trainer.cfg.run.ckpt_every = 4
    trainer.train(stop_at_step=4)
    trainer.close()
    if rank == 0:
        assert [s for s, _ in val.history] == [3]
    torch.distributed.destroy_process_group()


def test_two_process_step_equals_single_process_step(tmp_path):
    from arcface.train.trainer import Trainer

    ds, x, y = _data()
    single = Trainer(
        build_config("tiny_cpu", [*OVERRIDES, f"batch_size={WORLD * PER_RANK}", f"run.output={tmp_path}/1"]), ds
    )
    torch.save(
        {"backbone": single.backbone.state_dict(), "head": single.head.weight.detach().clone()}, tmp_path / "init.pt"
    )
    losses = [single.train_step(bx, by) for bx, by in _batches(x, y)]

    torch.multiprocessing.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))
    for name, want in single.backbone.state_dict().items():
        torch.testing.assert_close(r0["backbone"][name], want, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(r1["backbone"][name], r0["backbone"][name], rtol=0, atol=0, msg=name)
    torch.testing.assert_close(torch.cat([r0["head"], r1["head"]]), single.head.weight.detach(), rtol=1e-4, atol=1e-6)
    assert r0["losses"] == pytest.approx(losses, rel=1e-5) and r1["losses"] == pytest.approx(losses, rel=1e-5)
    step4 = tmp_path / "ddp" / "checkpoints" / "step_00000004"
    assert sorted(p.name for p in step4.iterdir()) == ["rank0.pt", "rank1.pt"]
    weight, k = ckpt.load_head_weight(step4)
    assert k == 1 and tuple(weight.shape) == (6, 32)
    # The steps moved the weights (the comparison is not between two untouched copies).
    init = torch.load(tmp_path / "init.pt")
    assert not torch.allclose(init["head"], single.head.weight.detach())
