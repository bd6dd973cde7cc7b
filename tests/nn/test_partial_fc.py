"""Partial FC: equals full FC at r = 1 (one process and two gloo processes); sampling keeps positives."""

from __future__ import annotations

import os

import pytest

from net import free_port

torch = pytest.importorskip("torch")
F = torch.nn.functional

from arcface.errors import InputError  # noqa: E402
from arcface.nn.margins import CombinedMarginLoss  # noqa: E402
from arcface.nn.partial_fc import PartialFC, class_range  # noqa: E402


def full_fc_loss(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, margin: CombinedMarginLoss, k: int = 1):
    """Reference: plain full-FC margin softmax with torch's own cross-entropy."""
    cos = F.normalize(x) @ F.normalize(w).t()
    if k > 1:
        cos = cos.view(x.shape[0], -1, k).amax(dim=2)
    return F.cross_entropy(margin(cos, y), y)


@pytest.mark.parametrize(
    ("margin", "k"),
    [
        (CombinedMarginLoss.arcface(), 1),
        (CombinedMarginLoss.cosface(), 1),
        (CombinedMarginLoss(s=32, m1=1.1, m2=0.2, m3=0.1), 1),
        (CombinedMarginLoss.arcface(), 3),
    ],
)
def test_rate_one_equals_full_fc_single_process(margin, k) -> None:
    torch.manual_seed(0)
    pfc = PartialFC(16, 40, sample_rate=1.0, margin_loss=margin, num_subcenters=k)
    x = torch.randn(12, 16, requires_grad=True)
    y = torch.randint(0, 40, (12,))
    loss = pfc(x, y)
    loss.backward()
    x2 = x.detach().clone().requires_grad_()
    w2 = pfc.weight.detach().clone().requires_grad_()
    ref = full_fc_loss(x2, w2, y, margin, k)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pfc.weight.grad, w2.grad, rtol=1e-4, atol=1e-6)


def test_sampling_keeps_positives_and_equals_fc_on_sampled_classes() -> None:
    torch.manual_seed(1)
    pfc = PartialFC(16, 1000, sample_rate=0.05, generator=torch.Generator().manual_seed(3))
    x = torch.randn(32, 16, requires_grad=True)
    y = torch.randint(0, 1000, (32,))
    loss = pfc(x, y)
    loss.backward()
    index = pfc.last_index
    assert index.numel() == 50
    assert torch.equal(index, index.sort().values)
    assert set(y.tolist()) <= set(index.tolist())
    # the loss is the full-FC loss over exactly the sampled classes
    x2 = x.detach().clone().requires_grad_()
    w_sub = pfc.weight.detach()[index].clone().requires_grad_()
    y_sub = torch.searchsorted(index, y)
    ref = full_fc_loss(x2, w_sub, y_sub, pfc.margin_loss)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pfc.weight.grad[index], w_sub.grad, rtol=1e-4, atol=1e-6)
    mask = torch.ones(1000, dtype=torch.bool)
    mask[index] = False
    assert pfc.weight.grad[mask].abs().sum() == 0


@pytest.mark.parametrize("k", [1, 3])
def test_sparse_grad_equals_dense_grad(k: int) -> None:
    torch.manual_seed(4)
    x = torch.randn(16, 8)
    y = torch.randint(0, 200, (16,))
    grads = []
    for sparse in (False, True):
        pfc = PartialFC(8, 200, 0.2, num_subcenters=k, generator=torch.Generator().manual_seed(0), sparse_grad=sparse)
        with torch.no_grad():
            pfc.weight.copy_(torch.randn(200 * k, 8, generator=torch.Generator().manual_seed(1)))
        pfc(x, y).backward()
        assert pfc.weight.grad.is_sparse == sparse
        grads.append(pfc.weight.grad.to_dense())
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_more_positives_than_the_sample_size_are_all_kept() -> None:
    pfc = PartialFC(8, 100, sample_rate=0.01)  # 1 sampled class, but 20 positives
    y = torch.arange(0, 100, 5)
    pfc(torch.randn(20, 8), y)
    assert pfc.last_index.tolist() == y.tolist()


def test_eval_mode_uses_all_classes() -> None:
    torch.manual_seed(2)
    pfc = PartialFC(8, 50, sample_rate=0.1).eval()
    x, y = torch.randn(4, 8), torch.tensor([1, 2, 3, 4])
    ref = full_fc_loss(x, pfc.weight.detach(), y, pfc.margin_loss)
    torch.testing.assert_close(pfc(x, y), ref, rtol=1e-5, atol=1e-5)


def test_class_range_partitions_classes() -> None:
    for world in (1, 2, 3, 7):
        parts = [class_range(100, r, world) for r in range(world)]
        starts = [s for s, _ in parts]
        assert sum(n for _, n in parts) == 100
        assert starts == sorted(starts) and starts[0] == 0
        for (s, n), (s2, _) in zip(parts, parts[1:], strict=False):
            assert s + n == s2
        assert max(n for _, n in parts) - min(n for _, n in parts) <= 1


def test_input_errors() -> None:
    pfc = PartialFC(8, 10)
    with pytest.raises(InputError, match="labels must be in"):
        pfc(torch.randn(2, 8), torch.tensor([0, 10]))
    with pytest.raises(InputError, match="embeddings"):
        pfc(torch.randn(2, 7), torch.tensor([0, 1]))
    with pytest.raises(InputError, match="sample_rate"):
        PartialFC(8, 10, sample_rate=0.0)


# ---- two processes on gloo ------------------------------------------------------------------------------

N_CLASSES, DIM, B_LOCAL = 37, 16, 6
SUBCENTERS = (1, 2)


def _global_problem():
    g = torch.Generator().manual_seed(123)
    w = torch.randn(N_CLASSES * 2, DIM, generator=g)
    x = torch.randn(2 * B_LOCAL, DIM, generator=g)
    y = torch.randint(0, N_CLASSES, (2 * B_LOCAL,), generator=g)
    y[0], y[B_LOCAL] = 0, N_CLASSES - 1  # targets on both shards
    return w, x, y


def _worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        for k in SUBCENTERS:
            w, x, y = _global_problem()
            pfc = PartialFC(DIM, N_CLASSES, sample_rate=1.0, num_subcenters=k)
            start, n = pfc.class_start, pfc.num_local
            with torch.no_grad():
                pfc.weight.copy_(w[: N_CLASSES * k].view(N_CLASSES, k, DIM)[start : start + n].reshape(-1, DIM))
            xl = x[rank * B_LOCAL : (rank + 1) * B_LOCAL].clone().requires_grad_()
            loss = pfc(xl, y[rank * B_LOCAL : (rank + 1) * B_LOCAL])
            loss.backward()
            result = {"loss": loss.detach(), "x_grad": xl.grad, "w_grad": pfc.weight.grad, "start": start, "n": n}
            torch.save(result, os.path.join(out_dir, f"rank{rank}_k{k}.pt"))
        # sampled: r = 0.3, each rank with its own generator
        w, x, y = _global_problem()
        pfc = PartialFC(DIM, N_CLASSES, sample_rate=0.3, generator=torch.Generator().manual_seed(rank))
        with torch.no_grad():
            pfc.weight.copy_(w[pfc.class_start : pfc.class_start + pfc.num_local])
        xl = x[rank * B_LOCAL : (rank + 1) * B_LOCAL].clone().requires_grad_()
        loss = pfc(xl, y[rank * B_LOCAL : (rank + 1) * B_LOCAL])
        loss.backward()
        result = {"loss": loss.detach(), "x_grad": xl.grad, "index": pfc.last_index + pfc.class_start}
        torch.save(result, os.path.join(out_dir, f"rank{rank}_sampled.pt"))
    finally:
        dist.destroy_process_group()


def test_rate_one_equals_full_fc_two_processes_gloo(tmp_path) -> None:
    """Loss, local embedding gradients and each shard's weight gradient equal the full-FC ones on the
    concatenated batch (plain centers and K = 2 sub-centers)."""
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for k in SUBCENTERS:
        w, x, y = _global_problem()
        w = w[: N_CLASSES * k].clone().requires_grad_()
        x = x.clone().requires_grad_()
        ref = full_fc_loss(x, w, y, CombinedMarginLoss(), k)
        ref.backward()
        wg = w.grad.view(N_CLASSES, k, DIM)
        shards = []
        for rank in range(2):
            got = torch.load(tmp_path / f"rank{rank}_k{k}.pt")
            torch.testing.assert_close(got["loss"], ref.detach(), rtol=1e-5, atol=1e-5)
            x_ref = x.grad[rank * B_LOCAL : (rank + 1) * B_LOCAL]
            torch.testing.assert_close(got["x_grad"], x_ref, rtol=1e-4, atol=1e-6)
            s, n = got["start"], got["n"]
            torch.testing.assert_close(got["w_grad"], wg[s : s + n].reshape(-1, DIM), rtol=1e-4, atol=1e-6)
            shards.append((s, n))
        assert shards == [(0, 19), (19, 18)]

    # sampled: the loss equals the full-FC loss over the union of both ranks' sampled classes
    w, x, y = _global_problem()
    got = [torch.load(tmp_path / f"rank{rank}_sampled.pt") for rank in range(2)]
    classes = torch.cat([g["index"] for g in got])
    assert set(y.tolist()) <= set(classes.tolist())
    assert len(classes) < N_CLASSES
    x = x.clone().requires_grad_()
    ref = full_fc_loss(x, w[classes], torch.searchsorted(classes, y), CombinedMarginLoss())
    ref.backward()
    for rank, g in enumerate(got):
        torch.testing.assert_close(g["loss"], ref.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g["x_grad"], x.grad[rank * B_LOCAL : (rank + 1) * B_LOCAL], rtol=1e-4, atol=1e-6)
