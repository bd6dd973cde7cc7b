"""The GPU path: AMP (bf16, fp16 with GradScaler), DDP on nccl, Partial FC sharding on CUDA, and ONNX Runtime's
CUDA execution provider. Skipped without CUDA; run on a GPU machine with ``python -m pytest -m gpu``."""

from __future__ import annotations

import numpy as np
import pytest

from net import free_port

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

from arcface.train.config import build_config  # noqa: E402
from arcface.train.data import ArrayDataset  # noqa: E402
from arcface.train.synthetic import make_identities  # noqa: E402
from arcface.train.trainer import Trainer  # noqa: E402


def _data(n_ids: int = 16, per_id: int = 8):
    imgs, labels = make_identities(n_ids, per_id, seed=0)
    return ArrayDataset(imgs, labels)


def _cfg(tmp_path, *extra):
    return build_config(
        "tiny_cpu",
        [f"run.output={tmp_path}", "run.progress=false", "run.device=cuda", "run.ckpt_every=0", "model.width=16",
         "optim.batch_size=32", "optim.max_steps=12", "optim.lr=0.05", *extra],
    )  # fmt: skip


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_on_cuda(tmp_path, amp):
    t = Trainer(_cfg(tmp_path, f"optim.amp={amp}"), dataset=_data())
    assert t.amp_dtype == (torch.bfloat16 if amp == "bf16" else torch.float16)
    assert (t.scaler is not None) is (amp == "fp16")  # GradScaler only for fp16
    summary = t.train()
    losses = [loss for _, loss in t.history]
    assert all(np.isfinite(losses)) and summary["steps"] == 12
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    if t.scaler is not None:
        assert t.scaler.get_scale() > 0


def test_ddp_nccl_single_process_group_with_partial_fc(tmp_path, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    dist.init_process_group("nccl", init_method="env://", rank=0, world_size=1)
    try:
        t = Trainer(_cfg(tmp_path, "head.sample_rate=0.5"), dataset=_data())
        assert dist.get_backend() == "nccl" and t.device.type == "cuda"
        summary = t.train()
        assert summary["steps"] == 12 and np.isfinite(summary["loss"])
    finally:
        dist.destroy_process_group()


def test_onnxruntime_cuda_execution_provider(vectron_dir):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA execution provider (pip install onnxruntime-gpu)")
    from arcface.embed.onnx import OnnxEmbedder
    from arcface.export.crops import reference_crops
    from arcface.runtime import get_session

    crops = reference_crops(8)
    model = vectron_dir / "w600k_mbf.onnx"
    gpu = OnnxEmbedder(model)  # CUDA first by default when onnxruntime-gpu offers it
    assert gpu.session.get_providers()[0] == "CUDAExecutionProvider"
    cpu = get_session(model, providers=["CPUExecutionProvider"])
    x = gpu.spec.preprocess(crops)
    ref = cpu.run(None, {cpu.get_inputs()[0].name: x})[0]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert float(np.min(np.sum(ref * gpu.embed(crops), axis=1))) >= 0.999
