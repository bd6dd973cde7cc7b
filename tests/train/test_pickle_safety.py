"""No torch file runs code (trust issue, case 1): a crafted pickle is refused at every entry point.

The payload's unpickling would run ``os.system("touch MARKER")``; every test asserts exit 2 (or
``InputError``), a message naming the file, and that the marker file was never created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.errors import InputError  # noqa: E402
from arcface.train import checkpoint as ckpt  # noqa: E402


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path: Path, marker: Path, wrap: bool = True) -> Path:
    """A torch file whose unpickling would create ``marker``: inside a checkpoint-shaped dict, or bare."""
    obj = {"backbone": {"w": torch.zeros(2)}, "config": {}, "x": _Payload(marker)} if wrap else _Payload(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _image_folder(root: Path, people: int = 2, per: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for p in range(people):
        (root / f"id{p}").mkdir(parents=True)
        for k in range(per):
            cv2.imwrite(str(root / f"id{p}" / f"{k}.png"), rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
    return root


def _arcface(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arcface", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_the_payload_really_runs_code_when_unpickled_unsafely(tmp_path: Path) -> None:
    """The test's teeth: the same file loaded with weights_only=False does create the marker."""
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "evil.pt", marker)
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("wrap", [True, False])
def test_library_loaders_refuse_the_payload(tmp_path: Path, wrap: bool) -> None:
    from arcface.nn.convert import load_arcface_torch
    from arcface.train.trainer import init_backbone_from

    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "evil.pt", marker, wrap)
    for load in (
        lambda: ckpt.load_rank_file(evil, 0),
        lambda: ckpt.load_backbone_state(evil),
        lambda: load_arcface_torch(evil, "mbf"),
        lambda: init_backbone_from(torch.nn.Linear(2, 2), str(evil)),
    ):
        with pytest.raises(InputError, match=r"evil\.pt.*refused.*run code.*posix\.system"):
            load()
    assert not marker.exists()


def test_cli_export_onnx_refuses_the_payload(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "evil.pt", marker)
    res = _arcface("export", "onnx", str(evil), str(tmp_path / "out.onnx"), "--arch", "mbf", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "evil.pt" in res.stderr and "refused" in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists() and not (tmp_path / "out.onnx").exists()


def test_cli_train_init_from_and_resume_refuse_the_payload(tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "faces")
    common = ["train", "tiny_cpu", f"data.path={data}", "model.width=8", "num_workers=0", "epochs=1", "batch_size=4"]
    marker = tmp_path / "pwned-init"
    evil = _evil(tmp_path / "evil.pt", marker)
    res = _arcface(*common, f"run.output={tmp_path / 'run1'}", f"run.init_from={evil}", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "evil.pt" in res.stderr and "refused" in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists()

    # resume: an attacker replaced the rank0.pt of the newest checkpoint of a run folder
    run = tmp_path / "run2"
    marker = tmp_path / "pwned-resume"
    _evil(run / "checkpoints" / "step_00000005" / "rank0.pt", marker)
    res = _arcface(*common, f"run.output={run}", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "rank0.pt" in res.stderr and "refused" in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists()


def test_cli_clean_refuses_the_payload(tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "faces")
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "ckpt" / "rank0.pt", marker)
    res = _arcface("clean", str(evil.parent), str(data), "--out", str(tmp_path / "cleaned"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "rank0.pt" in res.stderr and "refused" in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists()


def test_resume_from_a_checkpoint_without_a_backbone_is_a_clear_error(tmp_path: Path) -> None:
    """Case 9: a bad checkpoint on resume used to end in ``KeyError: 'backbone'``."""
    from arcface.train.config import build_config
    from arcface.train.data import ArrayDataset
    from arcface.train.synthetic import make_identities
    from arcface.train.trainer import Trainer

    run = tmp_path / "run"
    bad = run / "checkpoints" / "step_00000003" / "rank0.pt"
    bad.parent.mkdir(parents=True)
    torch.save({"head": {}, "step": 3}, bad)
    imgs, labels = make_identities(4, 4, seed=1)
    extra = ["model.width=8", "num_workers=0", "progress=false", "batch_size=8", f"run.output={run}"]
    cfg = build_config("tiny_cpu", extra)
    with pytest.raises(InputError, match=r"step_00000003.*not a complete .*missing .*backbone"):
        Trainer(cfg, ArrayDataset(imgs, labels))


def test_trainer_checkpoints_load_weights_only_and_resume(tmp_path: Path) -> None:
    """The trainer's own checkpoints (RNG states included) load with the weights-only unpickler."""
    from arcface.train.config import build_config
    from arcface.train.data import ArrayDataset
    from arcface.train.synthetic import make_identities
    from arcface.train.trainer import Trainer

    imgs, labels = make_identities(4, 4, seed=1)
    extra = ["model.width=8", "num_workers=0", "progress=false", "batch_size=8", "epochs=1", "ckpt_every=1"]
    cfg = build_config("tiny_cpu", [*extra, f"run.output={tmp_path / 'run'}"])
    t = Trainer(cfg, ArrayDataset(imgs, labels))
    t.train()
    t.close()
    last = ckpt.latest_checkpoint(tmp_path / "run")
    state = torch.load(last / "rank0.pt", weights_only=True)  # would raise on any non-allow-listed global
    assert set(ckpt.TRAIN_STATE_KEYS) <= set(state) and isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
