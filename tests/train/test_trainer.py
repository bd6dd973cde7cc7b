"""Trainer: exact resume, checkpoint rotation and atomicity, logging, accumulation, fine-tuning init."""

from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.errors import InputError  # noqa: E402
from arcface.train import checkpoint as ckpt  # noqa: E402
from arcface.train.config import build_config  # noqa: E402
from arcface.train.data import ArrayDataset  # noqa: E402
from arcface.train.synthetic import make_identities  # noqa: E402
from arcface.train.trainer import Trainer  # noqa: E402

TINY = [
    "model.width=8",
    "model.embedding_size=32",
    "batch_size=16",
    "progress=false",
    "log_every=1",
    "num_workers=0",
]


@pytest.fixture(scope="module")
def data():
    return make_identities(8, 8, seed=11)


def _trainer(data, out, extra=(), **kw) -> Trainer:
    cfg = build_config("tiny_cpu", [*TINY, f"run.output={out}", *extra])
    imgs, labels = data
    return Trainer(cfg, ArrayDataset(imgs, labels), **kw)


def test_resume_reproduces_the_uninterrupted_loss_trajectory(data, tmp_path):
    # Partial FC sampling (sample_rate 0.5), dropout, augmentation and warm-up all draw randomness.
    extra = [
        "epochs=3",
        "head.sample_rate=0.5",
        "model.dropout=0.2",
        "data.color=0.2",
        "data.crop=0.1",
        "warmup_epochs=1",
        "optimizer=adamw",
        "lr=0.003",
        "weight_decay=0.05",
    ]
    ref = _trainer(data, tmp_path / "ref", [*extra, "resume=none", "ckpt_every=0"])
    assert ref.total_steps == 12 and ref.steps_per_epoch == 4
    ref.train()
    ref.close()

    first = _trainer(data, tmp_path / "run", [*extra, "ckpt_every=5", "keep_last=2"])
    first.train(stop_at_step=7)  # "crash" after step 7: steps 6-7 are lost, the checkpoint is at step 5
    first.close()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step_00000005"]

    resumed = _trainer(data, tmp_path / "run", [*extra, "ckpt_every=5", "keep_last=2"])
    assert (resumed.step, resumed.epoch, resumed.micro_in_epoch) == (5, 1, 1)
    resumed.train()
    resumed.close()

    ref_losses = [loss for _, loss in ref.history]
    got = [loss for _, loss in resumed.history]
    assert [s for s, _ in resumed.history] == list(range(1, 13))
    np.testing.assert_array_equal(got, ref_losses)  # bit-identical on CPU
    for (name, a), b in zip(ref.backbone.state_dict().items(), resumed.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # Rotation kept the last two; no temporary folders left.
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step_00000010", "step_00000012"]
    # The CSV holds each step once (rows of the abandoned steps 6-7 were dropped on resume).
    with open(tmp_path / "run" / "scalars.csv", newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r["tag"] == "train/loss"]
    assert steps == list(range(1, 13))
    assert (tmp_path / "run" / "backbone.pt").is_file() and (tmp_path / "run" / "config.json").is_file()


def test_loss_decreases_and_lr_follows_the_schedule(data, tmp_path):
    t = _trainer(data, tmp_path, ["epochs=4", "resume=none", "ckpt_every=0", "warmup_epochs=1", "lr=0.05"])
    lrs = []
    t.train(on_step=lambda tr, loss: lrs.append(tr.optimizer.param_groups[0]["lr"]))
    t.close()
    losses = [loss for _, loss in t.history]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])
    # lr after step s (1-based) is base * factor(s): warm-up over 4 steps, then (1 - t)^2 to 0 at step 16.
    assert lrs[0] == pytest.approx(0.05 * 2 / 4) and lrs[2] == pytest.approx(0.05)
    assert lrs[9] == pytest.approx(0.05 * (1 - 6 / 12) ** 2) and lrs[-1] == 0.0


def test_gradient_accumulation_counts_optimizer_steps(data, tmp_path):
    t = _trainer(data, tmp_path, ["epochs=2", "resume=none", "ckpt_every=0", "grad_accum=2", "batch_size=8"])
    assert t.steps_per_epoch == 4 and t.total_steps == 8
    t.train()
    t.close()
    assert t.step == 8 and t.micro_in_epoch == 8 and t.epoch == 1


def test_accumulated_step_equals_one_big_batch_without_batchnorm(data, tmp_path):
    imgs, labels = data
    x = torch.stack([ArrayDataset(imgs, labels)[i][0] for i in range(16)])
    y = torch.as_tensor(labels[:16])
    finals = []
    for accum, bs in ((1, 16), (4, 4)):
        t = _trainer(
            data, tmp_path / str(accum), ["resume=none", "model.norm=group", f"grad_accum={accum}", f"batch_size={bs}"]
        )
        t.train_step(x, y)
        finals.append(torch.cat([p.detach().flatten() for p in t.backbone.parameters()]))
    torch.testing.assert_close(finals[0], finals[1], rtol=1e-4, atol=1e-6)


def test_init_from_checkpoint_and_errors(data, tmp_path):
    t = _trainer(data, tmp_path / "a", ["max_steps=2", "resume=none", "ckpt_every=2"])
    t.train()
    t.close()
    step_dir = ckpt.latest_checkpoint(tmp_path / "a")
    fine = _trainer(data, tmp_path / "b", ["max_steps=1", "resume=none", f"run.init_from={step_dir}"])
    for a, b in zip(t.backbone.state_dict().values(), fine.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(InputError, match="not found"):
        _trainer(data, tmp_path / "c", ["resume=none", f"run.init_from={tmp_path / 'nope.pt'}"])
    with pytest.raises(InputError, match="cannot fill one step"):
        _trainer(data, tmp_path / "d", ["resume=none", "batch_size=128"])


def _bn_names(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)]


def test_init_from_pack_onnx_for_fine_tuning(data, tmp_path, vectron_dir):
    pytest.importorskip("onnx")
    from arcface.nn.convert import load_onnx_recognizer

    onnx_path = vectron_dir / "w600k_mbf.onnx"
    t = _trainer(
        data,
        tmp_path,
        ["model.network=mbf_w600k", "model.width=0", "model.embedding_size=512", f"run.init_from={onnx_path}"],
    )
    ref = load_onnx_recognizer(onnx_path, arch="mbf_w600k")
    got = t.backbone.state_dict()
    bn_params = {f"{bn}.{p}" for bn in _bn_names(ref) for p in ("weight", "bias", "running_mean", "running_var")}
    for name, a in ref.state_dict().items():
        if name in bn_params or name.endswith("num_batches_tracked"):
            continue
        torch.testing.assert_close(got[name], a, rtol=0, atol=0, msg=name)  # convs, PReLU, linear: as imported
    imgs, labels = data
    ds = ArrayDataset(imgs, labels)
    x = torch.stack([ds[i][0] for i in range(16)])
    t.backbone.eval()
    with torch.no_grad():  # BatchNorm statistics restored from the data: the eval-mode function is unchanged
        torch.testing.assert_close(t.backbone(x), ref(x), rtol=1e-4, atol=1e-4)
    bn = dict(t.backbone.named_modules())["layers.0.layers.1"]
    assert float(bn.running_var.mean()) != 1.0 and t.bn_mode == "frozen"
    loss = t.train_step(torch.stack([ds[i][0] for i in range(16)]), torch.as_tensor(labels[:16]))
    assert np.isfinite(loss)
