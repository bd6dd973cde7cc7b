"""CombinedMarginLoss against closed-form numpy references, gradcheck, and numerical edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.errors import InputError  # noqa: E402
from arcface.nn.margins import CombinedMarginLoss  # noqa: E402

PRESETS = {
    "arcface": (1.0, 0.5, 0.0),
    "cosface": (1.0, 0.0, 0.35),
    "sphereface": (1.35, 0.0, 0.0),
    "sphereface4": (4.0, 0.0, 0.0),
    "combined": (1.2, 0.3, 0.2),
}


def _reference_target(c: np.ndarray, m1: float, m2: float, m3: float, eps: float = 1e-7) -> np.ndarray:
    """Closed form written independently of the module.

    ArcFace uses insightface's trig expansion cos(t + m) = cos t cos m - sin t sin m with its th/mm rule;
    other presets use the documented fallback cos t - mm - m3 beyond t0 = (pi - m2) / m1.
    """
    c = np.clip(c.astype(np.float64), -1 + eps, 1 - eps)
    if m1 == 1.0 and m3 == 0.0:
        sin = np.sqrt(1.0 - c**2)
        phi = c * math.cos(m2) - sin * math.sin(m2)
        return np.where(c > math.cos(math.pi - m2), phi, c - math.sin(math.pi - m2) * m2)
    if m1 == 1.0 and m2 == 0.0:
        return c - m3
    t = np.arccos(c)
    t0 = (math.pi - m2) / m1
    d = math.pi - t0
    mm = max(d * math.sin(d), 1 + math.cos(t0))
    return np.where(t <= t0, np.cos(m1 * t + m2) - m3, c - mm - m3)


def _batch(seed: int = 0, b: int = 6, c: int = 5):
    g = torch.Generator().manual_seed(seed)
    cos = torch.rand(b, c, generator=g, dtype=torch.float64) * 2 - 1
    cos[0, 0], cos[1, 1], cos[2, 2] = 1.0, -1.0, 0.0  # the edges and theta = pi/2
    labels = torch.tensor([0, 1, 2, 3, -1, 4])  # row 4: its target lives elsewhere (Partial FC)
    return cos, labels


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_golden_values_against_numpy(preset: str) -> None:
    m1, m2, m3 = PRESETS[preset]
    loss = CombinedMarginLoss(s=64.0, m1=m1, m2=m2, m3=m3)
    cos, labels = _batch()
    out = loss(cos, labels).numpy()
    expected = 64.0 * cos.numpy().copy()
    for i, y in enumerate(labels.tolist()):
        if y >= 0:
            expected[i, y] = 64.0 * _reference_target(cos.numpy()[i, y : y + 1], m1, m2, m3)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-6)


def test_hand_computed_values() -> None:
    c = torch.tensor([[0.5, 0.2]], dtype=torch.float64)
    y = torch.tensor([0])
    arc = CombinedMarginLoss.arcface(s=64.0, m=0.5)(c, y)
    assert arc[0, 0].item() == pytest.approx(64.0 * math.cos(math.pi / 3 + 0.5), abs=1e-9)
    assert arc[0, 1].item() == pytest.approx(64.0 * 0.2)
    cosf = CombinedMarginLoss.cosface(s=30.0, m=0.35)(c, y)
    assert cosf[0, 0].item() == pytest.approx(30.0 * 0.15)
    sph = CombinedMarginLoss.sphereface(s=10.0, m=1.5)(c, y)
    assert sph[0, 0].item() == pytest.approx(10.0 * math.cos(1.5 * math.pi / 3))
    # ArcFace past theta + m > pi: insightface's fallback cos(theta) - m sin(m)
    far = CombinedMarginLoss.arcface(s=1.0, m=0.5)(torch.tensor([[-0.95]], dtype=torch.float64), y)
    assert far[0, 0].item() == pytest.approx(-0.95 - 0.5 * math.sin(0.5))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_target_logit_is_monotonic_in_theta(preset: str) -> None:
    m1, m2, m3 = PRESETS[preset]
    loss = CombinedMarginLoss(m1=m1, m2=m2, m3=m3)
    theta = torch.linspace(0.0, math.pi, 20001, dtype=torch.float64)
    v = loss.target_logit(torch.cos(theta))
    assert (v[1:] <= v[:-1] + 1e-12).all()
    v32 = loss.target_logit(torch.cos(theta).float())
    assert (v32[1:] <= v32[:-1] + 1e-5).all()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_gradcheck_float64(preset: str) -> None:
    m1, m2, m3 = PRESETS[preset]
    loss = CombinedMarginLoss(s=4.0, m1=m1, m2=m2, m3=m3)
    g = torch.Generator().manual_seed(1)
    # keep clear of the clamp and of the fallback switch, where the function is not differentiable
    cos = (torch.rand(4, 3, generator=g, dtype=torch.float64) * 1.2 - 0.3).requires_grad_()
    labels = torch.tensor([0, 2, -1, 1])
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_finite_at_plus_minus_one_in_low_precision(preset: str, dtype) -> None:
    m1, m2, m3 = PRESETS[preset]
    loss = CombinedMarginLoss(m1=m1, m2=m2, m3=m3)
    cos = torch.tensor([[1.0, -1.0, 0.3], [-1.0, 1.0, 0.999], [0.0, 1.0, -1.0]], dtype=dtype).requires_grad_()
    labels = torch.tensor([0, 0, 2])
    out = loss(cos, labels)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, labels).backward()
    assert torch.isfinite(cos.grad.float()).all()
    # the low-precision margin equals the float32 one applied to the same (rounded) cosines
    ref = loss(cos.detach().float(), labels)
    torch.testing.assert_close(out, ref)


def test_easy_margin_applies_only_where_cos_positive() -> None:
    loss = CombinedMarginLoss(s=1.0, m2=0.5, easy_margin=True)
    c = torch.tensor([[0.6], [-0.4]], dtype=torch.float64)
    out = loss(c, torch.tensor([0, 0]))
    assert out[0, 0].item() == pytest.approx(math.cos(math.acos(0.6) + 0.5))
    assert out[1, 0].item() == pytest.approx(-0.4)


def test_interclass_filtering_zeroes_close_negatives_only() -> None:
    loss = CombinedMarginLoss(s=2.0, m2=0.0, interclass_filtering_threshold=0.3)
    c = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.4, 0.35]], dtype=torch.float64)
    out = loss(c, torch.tensor([0, 1]))
    expected = 2.0 * torch.tensor([[0.9, 0.0, 0.1], [0.2, 0.4, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_cross_entropy_decreases_with_margin_removed() -> None:
    """A margin makes the task harder: the loss with m > 0 exceeds the loss without."""
    cos, labels = _batch(3)
    labels = labels.clamp(min=0)
    plain = torch.nn.functional.cross_entropy(CombinedMarginLoss(m2=0.0)(cos, labels), labels)
    arc = torch.nn.functional.cross_entropy(CombinedMarginLoss(m2=0.5)(cos, labels), labels)
    assert arc > plain


@pytest.mark.parametrize("kw", [{"s": 0.0}, {"m1": 0.0}, {"m2": -0.1}, {"m2": 4.0}])
def test_bad_arguments(kw) -> None:
    with pytest.raises(InputError):
        CombinedMarginLoss(**kw)


def test_bad_shapes() -> None:
    loss = CombinedMarginLoss()
    with pytest.raises(InputError, match="labels"):
        loss(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(InputError, match="cos"):
        loss(torch.zeros(3), torch.zeros(3, dtype=torch.long))
