"""ONNX export: parity with torch, config.json round trip, dynamic batch, sources, the buffalo_sc round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from arcface.embed.onnx import OnnxEmbedder  # noqa: E402
from arcface.embed.torch import TorchEmbedder  # noqa: E402
from arcface.errors import InputError, ModelError  # noqa: E402
from arcface.export.onnx import export_onnx, row_cosine  # noqa: E402
from arcface.models.packs import sha256_file  # noqa: E402
from arcface.nn import create_model  # noqa: E402
from arcface.spec import ModelSpec  # noqa: E402


def _random_model(arch: str, seed: int = 0):
    """A randomly initialised backbone with non-trivial BatchNorm statistics (so folding them matters)."""
    torch.manual_seed(seed)
    model = create_model(arch)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model.eval()


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_row_cosine_closed_form():
    a = np.array([[1.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [6.0, 8.0]])
    np.testing.assert_allclose(row_cosine(a, b), [0.0, 1.0])


@pytest.fixture(scope="module", params=["iresnet18", "mbf"])
def exported(request, tmp_path_factory, real_crops):
    """(arch, model, ExportResult) of a random backbone exported with the defaults (dynamic batch)."""
    arch = request.param
    model = _random_model(arch)
    out = tmp_path_factory.mktemp(arch) / f"{arch}.onnx"
    return arch, model, export_onnx(model, out, arch=arch, crops=real_crops)


def test_export_parity_and_io(exported):
    arch, _, res = exported
    assert sorted(res.parity) == [1, 7]
    assert min(res.parity.values()) >= 0.9999
    assert res.path.is_file() and res.sha256 == sha256_file(res.path)
    # graph I/O as documented: "input" (N, 3, 112, 112) -> "embedding" (N, 512), N dynamic
    sess = _session(res.path)
    (inp,), (outp,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "input" and inp.shape[1:] == [3, 112, 112] and isinstance(inp.shape[0], str)
    assert outp.name == "embedding" and outp.shape[1] == 512 and isinstance(outp.shape[0], str)


def test_config_round_trip_matches_torch(exported, real_crops):
    arch, model, res = exported
    folder = res.path.parent
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg == json.loads((folder / f"{arch}.json").read_text())
    spec = ModelSpec.from_json(folder / "config.json")
    assert spec.input_name == "input" and spec.output_names == ("embedding",)
    assert spec.color_order == "RGB" and spec.layout == "NCHW" and spec.embedding_dim == 512
    assert spec.mean == (127.5,) * 3 and spec.std == (127.5,) * 3
    assert spec.extra["arch"] == arch and spec.extra["sha256"] == res.sha256
    assert spec.extra["input"]["value_range"] == [-1.0, 1.0]
    assert "[0, 255]" in spec.extra["pixel_range"] and "RGB" in spec.extra["pixel_range"]

    onnx_emb = OnnxEmbedder(res.path, spec).embed(real_crops[:9], batch_size=5)
    torch_emb = TorchEmbedder(model).embed(real_crops[:9])
    assert row_cosine(onnx_emb, torch_emb).min() >= 0.9999


def test_dynamic_batch(exported, real_crops):
    _, _, res = exported
    sess = _session(res.path)
    x = res.spec.preprocess(real_crops[:11])
    full = sess.run(None, {"input": x})[0]
    assert full.shape == (11, 512)
    for b in (1, 3, 10):  # any batch size gives the same per-face outputs
        part = sess.run(None, {"input": x[:b]})[0]
        np.testing.assert_allclose(part, full[:b], rtol=1e-3, atol=1e-4)


def _tiny(seed: int = 0):
    from arcface.train.models import build_backbone

    torch.manual_seed(seed)
    return build_backbone("tiny", 128, 0.0, 8).eval()


def test_fixed_batch(tmp_path, real_crops):
    fixed = export_onnx(_tiny(), tmp_path / "m.onnx", arch="tiny", dynamic_batch=False, crops=real_crops)
    assert list(fixed.parity) == [1] and fixed.parity[1] >= 0.9999
    fs = _session(fixed.path)
    assert fs.get_inputs()[0].shape == [1, 3, 112, 112]
    assert fixed.spec.extra["input"]["shape"] == [1, 3, 112, 112]
    with pytest.raises(Exception, match="(?i)dimension|shape|index"):
        fs.run(None, {"input": fixed.spec.preprocess(real_crops[:2])})


class _Noisy(torch.nn.Module):
    """Output depends on a random draw made inside the graph: torch and ONNX Runtime cannot agree."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 112 * 112, 512)

    def forward(self, x):
        y = self.fc(torch.flatten(x, 1))
        return y + 100.0 * torch.randn_like(y)


def test_parity_failure_writes_nothing(tmp_path, real_crops):
    out = tmp_path / "noisy.onnx"
    with pytest.raises(ModelError, match="disagrees with torch"):
        export_onnx(_Noisy().eval(), out, arch="noisy", crops=real_crops)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path, real_crops):
    model = _tiny()
    with pytest.raises(InputError, match=r"\.onnx"):
        export_onnx(model, tmp_path / "m.bin", crops=real_crops)
    with pytest.raises(InputError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=3, crops=real_crops)
    with pytest.raises(InputError, match="not found"):
        export_onnx(tmp_path / "missing.pth", tmp_path / "m.onnx")
    sd = tmp_path / "backbone.pth"
    torch.save(create_model("mbf").state_dict(), sd)
    with pytest.raises(InputError, match="--arch"):
        export_onnx(sd, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="unknown arch"):
        export_onnx(sd, tmp_path / "m.onnx", arch="resnet9000")
    with pytest.raises(ModelError, match="does not fit"):
        export_onnx(sd, tmp_path / "m.onnx", arch="iresnet18")
    assert not (tmp_path / "m.onnx").exists()


def test_training_checkpoint_source(tmp_path, real_crops):
    """A checkpoint in arcface.train's layout (backbone state + config naming the network) exports as is."""
    from arcface.train.config import TrainConfig

    cfg = TrainConfig.from_dict({"model": {"network": "tiny", "embedding_size": 128, "width": 8}})
    backbone = _tiny(3)
    step = tmp_path / "run" / "checkpoints" / "step_00000010"
    step.mkdir(parents=True)
    torch.save({"backbone": backbone.state_dict(), "config": cfg.to_dict(), "step": 10}, step / "rank0.pt")

    res = export_onnx(tmp_path / "run", tmp_path / "out" / "tiny.onnx", crops=real_crops)
    assert res.arch == "tiny" and res.spec.embedding_dim == 128
    emb = OnnxEmbedder(res.path, ModelSpec.from_json(res.config_path)).embed(real_crops)
    assert emb.shape == (16, 128)
    assert row_cosine(emb, TorchEmbedder(backbone).embed(real_crops)).min() >= 0.9999
    with pytest.raises(InputError, match="contradicts"):
        export_onnx(step / "rank0.pt", tmp_path / "out" / "x.onnx", arch="mbf")


@pytest.fixture(scope="module")
def buffalo_export(tmp_path_factory, vectron_dir):
    """buffalo_sc's w600k_mbf.onnx -> torch importer -> exporter, into a folder with the pack's detector."""
    out = tmp_path_factory.mktemp("pack") / "w600k_mbf_export.onnx"
    return export_onnx("buffalo_sc", out, detector=vectron_dir / "scrfd_500m_bnkps.onnx")


def test_buffalo_sc_round_trip(buffalo_export, vectron_dir, held_out_crops):
    res = buffalo_export
    assert res.arch == "mbf_w600k"
    assert min(res.source_parity.values()) >= 0.9999 and min(res.parity.values()) >= 0.9999
    original = OnnxEmbedder(vectron_dir / "w600k_mbf.onnx")
    exported = OnnxEmbedder(res.path, ModelSpec.from_json(res.config_path))
    cos = row_cosine(original.embed(held_out_crops), exported.embed(held_out_crops))
    assert cos.min() >= 0.9999


def test_export_folder_is_a_pack(buffalo_export, vectron_dir, wheel_images):
    from arcface.pipeline import FaceAnalyzer

    res = buffalo_export
    assert res.pack_json is not None and (res.path.parent / "scrfd_500m_bnkps.onnx").is_file()
    mine = FaceAnalyzer(pack=res.path.parent)
    assert mine.pack.recognizer == res.path and mine.pack.recognizer_spec.input_name == "input"
    ref = FaceAnalyzer()
    a = mine.analyze(wheel_images["gdp.jpg"])
    b = ref.analyze(wheel_images["gdp.jpg"])
    assert len(a) == len(b) > 0
    cos = row_cosine(np.stack([f.embedding for f in a]), np.stack([f.embedding for f in b]))
    assert cos.min() >= 0.9999
