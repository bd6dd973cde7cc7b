"""Backbones: every registered model runs forward/backward; figures match the published ones."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from arcface.errors import InputError  # noqa: E402
from arcface.nn import create_model, list_models, profile_model  # noqa: E402

# forward + backward on every run for these; the deeper IResNets share their blocks with iresnet18, so on
# every run they get an eval forward (batch 1) and their backward is marked slow
LIGHT = ["iresnet18", "mbf", "mbf_w600k"]


def test_registry_lists_all_models() -> None:
    assert set(list_models()) == {
        "iresnet18",
        "iresnet34",
        "iresnet50",
        "iresnet100",
        "iresnet200",
        "mbf",
        "mbf_w600k",
    }


def test_unknown_name_lists_registered_models() -> None:
    with pytest.raises(InputError, match="iresnet50") as info:
        create_model("resnet-9000")
    assert "resnet-9000" in str(info.value)


def _train_step_checks(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_features=128).train()
    x = torch.randn(2, 3, 112, 112)
    out = model(x)
    assert out.shape == (2, 128)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for n, p in trainable:
        assert p.grad is not None, f"{name}: {n} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {n} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {n} got an all-zero gradient"


@pytest.mark.parametrize("name", LIGHT)
def test_forward_backward_every_parameter_gets_gradient(name: str) -> None:
    _train_step_checks(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(list_models()) - set(LIGHT)))
def test_forward_backward_heavy(name: str) -> None:
    _train_step_checks(name)


@pytest.mark.parametrize("name", sorted(set(list_models()) - set(LIGHT)))
def test_heavy_models_eval_forward(name: str) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 112, 112))
    assert out.shape == (1, 512)
    assert torch.isfinite(out).all()


def test_iresnet_state_dict_names_match_arcface_torch() -> None:
    sd = create_model("iresnet50").state_dict()
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "bn1.running_var": (64,),
        "prelu.weight": (64,),
        "layer1.0.bn1.weight": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer1.0.bn2.weight": (64,),
        "layer1.0.prelu.weight": (64,),
        "layer1.0.conv2.weight": (64, 64, 3, 3),
        "layer1.0.bn3.weight": (64,),
        "layer1.0.downsample.0.weight": (64, 64, 1, 1),
        "layer1.0.downsample.1.running_mean": (64,),
        "layer3.13.conv2.weight": (256, 256, 3, 3),
        "layer4.2.bn3.bias": (512,),
        "bn2.weight": (512,),
        "fc.weight": (512, 512 * 7 * 7),
        "fc.bias": (512,),
        "features.weight": (512,),
        "features.running_var": (512,),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert "layer1.1.downsample.0.weight" not in sd
    assert "layer3.14.conv1.weight" not in sd


def test_mbf_state_dict_names_match_arcface_torch() -> None:
    sd = create_model("mbf").state_dict()
    expected = {
        "layers.0.layers.0.weight": (128, 3, 3, 3),
        "layers.1.layers.0.weight": (128, 2, 3, 3),
        "layers.2.layers.0.layers.0.weight": (128, 128, 1, 1),
        "layers.3.layers.3.layers.2.layers.1.running_var": (128,),
        "layers.6.layers.2.layers.0.weight": (256, 512, 1, 1),
        "conv_sep.layers.0.weight": (512, 256, 1, 1),
        "conv_sep.layers.2.weight": (512,),
        "features.layers.0.layers.0.weight": (512, 1, 7, 7),
        "features.layers.2.weight": (512, 512),
        "features.layers.3.running_mean": (512,),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert "features.layers.2.bias" not in sd


def test_iresnet_feature_scale_is_frozen_like_arcface_torch() -> None:
    model = create_model("iresnet18")
    assert not model.features.weight.requires_grad
    assert create_model("iresnet18", freeze_feature_scale=False).features.weight.requires_grad


@pytest.mark.parametrize(
    ("name", "gflops", "gflops_tol", "mparams", "mparams_tol"),
    [
        ("iresnet50", 6.3, 0.05, 43.6, 0.02),  # arcface_torch README: r50 6.3 GFLOPs, 43.6M params
        ("mbf", 0.45, 0.05, None, None),  # MobileFaceNet: about 0.45 GFLOPs
        ("mbf_w600k", 0.45, 0.05, None, None),
    ],
)
def test_profile_matches_published_figures(name, gflops, gflops_tol, mparams, mparams_tol) -> None:
    prof = profile_model(create_model(name))
    assert prof.gflops == pytest.approx(gflops, rel=gflops_tol)
    if mparams is not None:
        assert prof.mparams == pytest.approx(mparams, rel=mparams_tol)


def test_profile_counts_macs_exactly_on_a_toy_model() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 8 * 3*3*3 per output pixel
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 8 * 9 per pixel
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10),
    )
    prof = profile_model(model, input_size=(4, 4))
    assert prof.macs == 16 * 8 * 27 + 16 * 8 * 9 + 128 * 10
    assert prof.params == 8 * 27 + (8 * 9 + 8) + (1280 + 10)
