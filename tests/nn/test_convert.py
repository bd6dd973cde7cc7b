"""Weight import: the published w600k_mbf.onnx against onnxruntime, IResNet ONNX round trips, state dicts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from arcface.errors import InputError, ModelError  # noqa: E402
from arcface.nn import create_model  # noqa: E402
from arcface.nn.backbones.iresnet import IBasicBlock  # noqa: E402
from arcface.nn.convert import detect_arch, load_arcface_torch, load_onnx_recognizer  # noqa: E402
from arcface.spec import ARCFACE_RECOGNITION  # noqa: E402


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _onnx_run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def test_w600k_mbf_matches_onnxruntime_on_real_crops(vectron_dir: Path, face_crops: np.ndarray) -> None:
    path = vectron_dir / "w600k_mbf.onnx"
    assert detect_arch(path) == ("mbf_w600k", 512)
    model = load_onnx_recognizer(path)
    x = ARCFACE_RECOGNITION.preprocess(face_crops)
    expected = _onnx_run(path, x)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    cos = _cosines(got, expected)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(got, expected, atol=1e-3 * np.abs(expected).max())
    # the crops are different people: the imported model separates them like the original
    sims_t = got @ got.T / np.outer(np.linalg.norm(got, axis=1), np.linalg.norm(got, axis=1))
    sims_o = expected @ expected.T / np.outer(np.linalg.norm(expected, axis=1), np.linalg.norm(expected, axis=1))
    np.testing.assert_allclose(sims_t, sims_o, atol=1e-4)


def test_w600k_mbf_into_wrong_arch_is_a_model_error(vectron_dir: Path) -> None:
    with pytest.raises(ModelError, match="wrong architecture"):
        load_onnx_recognizer(vectron_dir / "w600k_mbf.onnx", arch="mbf")


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_onnx_recognizer(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError):
        load_onnx_recognizer(bad)


def test_unknown_arch(vectron_dir: Path) -> None:
    with pytest.raises(InputError, match="unknown arch"):
        load_onnx_recognizer(vectron_dir / "w600k_mbf.onnx", arch="resnet-9000")


def _randomised(name: str) -> torch.nn.Module:
    """A model with non-trivial BN affine parameters and running statistics set from one batch."""
    torch.manual_seed(0)
    model = create_model(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            m.momentum = 1.0  # running stats := this batch's stats
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 112, 112))
    return model.eval()


def _export(model: torch.nn.Module, path: Path) -> Path:
    """Export in insightface's layout: eval mode, BN folded into the preceding convs, input 'input.1'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 112, 112),),
            str(path),
            dynamo=False,
            input_names=["input.1"],
            output_names=["embedding"],
            opset_version=13,
            do_constant_folding=True,
        )
    return path


@pytest.mark.parametrize("name", ["iresnet18", "iresnet50"])
def test_iresnet_onnx_round_trip(tmp_path: Path, name: str, face_crops: np.ndarray) -> None:
    model = _randomised(name)
    path = _export(model, tmp_path / f"{name}.onnx")
    imported = load_onnx_recognizer(path)  # architecture detected from the graph
    assert type(imported) is type(model)
    assert sum(p.numel() for p in imported.parameters()) == sum(p.numel() for p in model.parameters())
    x = ARCFACE_RECOGNITION.preprocess(face_crops[:2])
    expected = _onnx_run(path, x)
    with torch.no_grad():
        got = imported(torch.from_numpy(x)).numpy()
        original = model(torch.from_numpy(x)).numpy()
    assert _cosines(got, expected).min() >= 0.9999
    assert _cosines(got, original).min() >= 0.9999


def test_iresnet_export_has_insightface_layout(tmp_path: Path) -> None:
    """BNs after convs are folded; each block's pre-activation BN and the two final BNs stay."""
    import onnx

    model = _randomised("iresnet18")
    path = _export(model, tmp_path / "r18.onnx")
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    n_blocks = sum(1 for m in model.modules() if isinstance(m, IBasicBlock))
    assert ops.count("BatchNormalization") == n_blocks + 2
    assert ops.count("Conv") == 1 + 2 * n_blocks + 4  # stem, two per block, four downsample convs
    assert detect_arch(path) == ("iresnet18", 512)
    with pytest.raises(ModelError, match="wrong architecture"):
        load_onnx_recognizer(path, arch="iresnet34")


def test_mbf_gdc_onnx_round_trip(tmp_path: Path, face_crops: np.ndarray) -> None:
    model = _randomised("mbf")
    path = _export(model, tmp_path / "mbf.onnx")
    assert detect_arch(path) == ("mbf", 512)
    imported = load_onnx_recognizer(path)
    x = torch.from_numpy(ARCFACE_RECOGNITION.preprocess(face_crops[:2]))
    with torch.no_grad():
        assert _cosines(imported(x).numpy(), model(x).numpy()).min() >= 0.9999


def test_load_arcface_torch_state_dict(tmp_path: Path) -> None:
    model = _randomised("iresnet18")
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        ref = model(x)
    # a DDP-wrapped state dict saved to disk, as arcface_torch's training writes it
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "backbone.pth")
    loaded = load_arcface_torch(tmp_path / "backbone.pth", "iresnet18")
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref)
    assert not loaded.training
    # wrong architecture: names do not fit
    with pytest.raises(ModelError, match="does not fit"):
        load_arcface_torch(model.state_dict(), "iresnet34")
    with pytest.raises(InputError, match="not found"):
        load_arcface_torch(tmp_path / "missing.pth", "iresnet18")


def test_load_arcface_torch_reads_embedding_size() -> None:
    small = create_model("mbf", num_features=128)
    loaded = load_arcface_torch(small.state_dict(), "mbf")
    assert loaded.features.layers[2].out_features == 128
