"""TorchEmbedder: the Embedder protocol over torch backbones, against onnxruntime on the same model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from arcface.embed.base import Embedder, l2_normalize  # noqa: E402
from arcface.embed.torch import TorchEmbedder  # noqa: E402
from arcface.errors import InputError  # noqa: E402
from arcface.nn import create_model  # noqa: E402
from arcface.spec import ARCFACE_RECOGNITION  # noqa: E402


@pytest.fixture(scope="module")
def mbf_embedder(vectron_dir: Path) -> TorchEmbedder:
    return TorchEmbedder.from_onnx(vectron_dir / "w600k_mbf.onnx")


def _onnx_raw(path: Path, crops: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = ARCFACE_RECOGNITION.preprocess(crops)
    return np.concatenate([sess.run(None, {"input.1": x[i : i + 1]})[0] for i in range(len(x))])


def test_protocol_and_parity_with_onnxruntime(mbf_embedder, vectron_dir: Path, face_crops) -> None:
    assert isinstance(mbf_embedder, Embedder)
    assert mbf_embedder.dim == 512
    crops = face_crops[:5]
    emb = mbf_embedder.embed(crops, batch_size=3)
    assert emb.dtype == np.float32 and emb.shape == (5, 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    ref = l2_normalize(_onnx_raw(vectron_dir / "w600k_mbf.onnx", crops))
    assert (emb * ref).sum(1).min() >= 0.9999


def test_flip_sums_raw_outputs_of_crop_and_mirror(mbf_embedder, face_crops) -> None:
    crops = face_crops[:2]
    plain = mbf_embedder.raw(crops)
    raw = plain + mbf_embedder.raw(np.ascontiguousarray(crops[:, :, ::-1]))
    flipped = mbf_embedder.embed(crops, flip=True)
    np.testing.assert_allclose(flipped, l2_normalize(raw), atol=1e-6)
    assert not np.allclose(flipped, l2_normalize(plain), atol=1e-3)


def test_single_crop_empty_batch_and_bad_shapes(mbf_embedder, face_crops) -> None:
    np.testing.assert_allclose(mbf_embedder.embed(face_crops[0]), mbf_embedder.embed(face_crops[:1]), atol=1e-6)
    assert mbf_embedder.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 512)
    with pytest.raises(InputError, match="112, 112, 3"):
        mbf_embedder.embed(np.zeros((2, 100, 112, 3), np.uint8))
    with pytest.raises(InputError, match="batch_size"):
        mbf_embedder.embed(face_crops[:1], batch_size=0)


def test_from_checkpoint(tmp_path: Path, face_crops) -> None:
    torch.manual_seed(0)
    model = create_model("mbf", num_features=128).eval()
    torch.save({"arch": "mbf", "state_dict": model.state_dict()}, tmp_path / "ckpt.pt")
    torch.save(model.state_dict(), tmp_path / "backbone.pth")
    direct = TorchEmbedder(model, spec=ARCFACE_RECOGNITION.with_(embedding_dim=128))
    a = TorchEmbedder.from_checkpoint(tmp_path / "ckpt.pt")
    b = TorchEmbedder.from_checkpoint(tmp_path / "backbone.pth", arch="mbf")
    assert a.dim == b.dim == 128
    ref = direct.embed(face_crops[:1])
    np.testing.assert_allclose(a.embed(face_crops[:1]), ref, atol=1e-6)
    np.testing.assert_allclose(b.embed(face_crops[:1]), ref, atol=1e-6)
    with pytest.raises(InputError, match="arch"):
        TorchEmbedder.from_checkpoint(tmp_path / "backbone.pth")


def test_inference_core_does_not_import_torch() -> None:
    code = "import sys, arcface.embed, arcface.embed.base, arcface.spec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
