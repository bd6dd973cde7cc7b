"""Sub-center ArcFace: max over sub-centers, reduction to ArcFace at K=1, dominant sub-centers."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from arcface.errors import InputError  # noqa: E402
from arcface.nn.margins import CombinedMarginLoss  # noqa: E402
from arcface.nn.subcenter import SubCenterArcFace  # noqa: E402


def test_class_cosine_is_max_over_subcenters() -> None:
    torch.manual_seed(0)
    head = SubCenterArcFace(8, 5, k=3)
    x = torch.randn(4, 8)
    got = head.cosine(x).detach().numpy()
    xn = x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    w = head.weight.detach().numpy().reshape(5, 3, 8)
    wn = w / np.linalg.norm(w, axis=2, keepdims=True)
    expected = np.einsum("bd,ckd->bck", xn, wn).max(axis=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_k1_equals_plain_arcface_cross_entropy() -> None:
    torch.manual_seed(1)
    head = SubCenterArcFace(8, 6, k=1, margin=CombinedMarginLoss(s=16.0, m2=0.5))
    x = torch.randn(5, 8)
    y = torch.tensor([0, 3, 5, 1, 3])
    cos = F.normalize(x) @ F.normalize(head.weight.detach()).t()
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    logits = 16.0 * cos.clone()
    for i, c in enumerate(y.tolist()):
        t = theta[i, c]
        logits[i, c] = 16.0 * (torch.cos(t + 0.5) if t + 0.5 <= math.pi else torch.cos(t) - 0.5 * math.sin(0.5))
    torch.testing.assert_close(head(x, y), F.cross_entropy(logits, y))


def test_gradient_reaches_only_the_best_subcenter() -> None:
    torch.manual_seed(2)
    head = SubCenterArcFace(8, 3, k=4)
    x = torch.randn(1, 8)
    head(x, torch.tensor([1])).backward()
    g = head.weight.grad.view(3, 4, 8).abs().sum(dim=2)
    best = head.subcenter_cosines(x)[0].argmax(dim=1)
    for c in range(3):
        nonzero = torch.nonzero(g[c]).flatten().tolist()
        assert nonzero == [int(best[c])]


def test_dominant_subcenter_and_angle() -> None:
    head = SubCenterArcFace(3, 2, k=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]]))
    # class 0: two samples near sub-center 1 (y axis), one near sub-center 0 (x axis, a noisy one)
    # class 1: one sample near sub-center 0 (z axis)
    x = torch.tensor([[0.0, 1, 0.1], [0.1, 1, 0], [1.0, 0, 0], [0.0, 0.2, 1]])
    y = torch.tensor([0, 0, 0, 1])
    counts = head.assignment_counts(x, y)
    assert counts.tolist() == [[1, 2], [1, 0]]
    idx, angle = head.dominant(x, y)
    assert idx.tolist() == [1, 1, 1, 0]
    expected = [math.atan2(0.1, 1), math.atan2(0.1, 1), math.pi / 2, math.atan2(0.2, 1)]
    np.testing.assert_allclose(angle.numpy(), expected, atol=1e-5)
    # counts from a larger data set override the local majority
    idx2, angle2 = head.dominant(x[2:3], y[2:3], counts=counts)
    assert idx2.tolist() == [1]
    assert angle2.item() == pytest.approx(math.pi / 2, abs=1e-5)


def test_label_errors() -> None:
    head = SubCenterArcFace(4, 3, k=2)
    with pytest.raises(InputError, match="labels"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(InputError, match="counts"):
        head.dominant(torch.randn(2, 4), torch.tensor([0, 1]), counts=torch.zeros(3, 3))
