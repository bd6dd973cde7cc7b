import os
import shutil

import pytest

from arcface.errors import ModelError
from arcface.models import get_model
from arcface.models.packs import DEFAULT_PACK, list_packs, load_pack, sha256_file
from arcface.spec import ModelSpec


@pytest.fixture(autouse=True)
def isolated_homes(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "insightface_home"))
    monkeypatch.delenv("ARCFACE_HOME", raising=False)
    monkeypatch.delenv("ARCFACE_PACK", raising=False)


def test_builtin_default_pack_is_verified():
    pack = load_pack()
    assert pack.name == DEFAULT_PACK and pack.source == "builtin" and pack.verified
    assert pack.recognizer.name == "w600k_mbf.onnx" and pack.detector.name == "scrfd_500m_bnkps.onnx"
    assert pack.recognizer_sha256 in get_model("w600k_mbf").sha256
    assert "non-commercial" in pack.licence


def _copy_pack(src_pack, dst, det_name="det_500m.onnx"):
    dst.mkdir(parents=True)
    shutil.copy(src_pack.detector, dst / det_name)
    shutil.copy(src_pack.recognizer, dst / "w600k_mbf.onnx")
    return dst


def test_insightface_layout_and_arcface_home_take_precedence(tmp_path, monkeypatch):
    builtin = load_pack()
    _copy_pack(builtin, tmp_path / "insightface_home" / "models" / "buffalo_sc")
    p = load_pack("buffalo_sc")
    assert p.source == "insightface" and p.detector.name == "det_500m.onnx"
    assert not p.verified  # det_500m.onnx has no published digest here: accepted, reported unverified
    home = tmp_path / "arcface_home"
    _copy_pack(builtin, home / "buffalo_sc", det_name="scrfd_500m_bnkps.onnx")
    monkeypatch.setenv("ARCFACE_HOME", str(home))
    p = load_pack("buffalo_sc")
    assert p.source == "ARCFACE_HOME" and p.verified
    names = {(d["name"], d["source"]) for d in list_packs()}
    assert ("buffalo_sc", "ARCFACE_HOME") in names and ("buffalo_sc", "builtin") in names


def test_altered_file_is_refused_with_its_name(tmp_path):
    d = _copy_pack(load_pack(), tmp_path / "mypack", det_name="scrfd_500m_bnkps.onnx")
    with open(d / "w600k_mbf.onnx", "r+b") as f:
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ModelError, match=r"w600k_mbf\.onnx is altered"):
        load_pack(d)


def test_missing_file_and_unknown_pack(tmp_path):
    (tmp_path / "insightface_home" / "models" / "buffalo_l").mkdir(parents=True)
    with pytest.raises(ModelError, match=r"det_10g\.onnx is missing"):
        load_pack("buffalo_l")
    with pytest.raises(ModelError, match="not found"):
        load_pack("no_such_pack")


def test_explicit_dir_with_unknown_names_and_config_json(tmp_path):
    d = tmp_path / "custom"
    d.mkdir()
    builtin = load_pack()
    shutil.copy(builtin.detector, d / "a_detector.onnx")
    shutil.copy(builtin.recognizer, d / "my_rec.onnx")
    ModelSpec(color_order="BGR").to_json(d / "my_rec.json")
    p = load_pack(d)
    assert p.detector.name == "a_detector.onnx" and p.recognizer.name == "my_rec.onnx"
    assert p.recognizer_spec.color_order == "BGR"
    assert p.recognizer_sha256 == sha256_file(builtin.recognizer)


def test_env_pack_and_explicit_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCFACE_PACK", "no_such_pack")
    with pytest.raises(ModelError):
        load_pack()
    builtin = load_pack(DEFAULT_PACK)
    p = load_pack(DEFAULT_PACK, recognizer=builtin.recognizer)
    assert p.source == "explicit" and p.verified
    with pytest.raises(ModelError, match="missing"):
        load_pack(DEFAULT_PACK, recognizer=os.path.join(tmp_path, "nope.onnx"))


def test_spec_config_round_trip_and_preprocess(tmp_path):
    import numpy as np

    spec = ModelSpec(color_order="BGR", mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0), extra={"arch": "mbf"})
    spec.to_json(tmp_path / "config.json")
    assert ModelSpec.from_json(tmp_path / "config.json") == spec
    img = np.zeros((1, 2, 2, 3), np.uint8)
    img[..., 0] = 9  # red
    x = spec.preprocess(img)
    assert x.shape == (1, 3, 2, 2)
    # BGR model: the red value lands in channel 2, normalised with that channel's mean/std.
    assert x[0, 2, 0, 0] == pytest.approx((9 - 3.0) / 8.0)
    assert x[0, 0, 0, 0] == pytest.approx((0 - 1.0) / 2.0)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(),
        ModelSpec(task="detection", std=(128.0, 128.0, 128.0)),
        ModelSpec(color_order="BGR", mean=(1.0, 2.0, 3.0), std=(5.0, 5.0, 5.0)),
        ModelSpec(color_order="BGR", mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0)),
        ModelSpec(layout="NHWC", mean=(10.0, 20.0, 30.0), std=(3.0, 3.0, 3.0)),
    ],
)
def test_preprocess_matches_float64_reference(spec):
    import numpy as np

    x = np.random.default_rng(0).integers(0, 256, (3, 20, 16, 3), dtype=np.uint8)
    ref = (x[..., ::-1] if spec.color_order == "BGR" else x).astype(np.float64)
    ref = (ref - np.array(spec.mean)) / np.array(spec.std)
    if spec.layout == "NCHW":
        ref = ref.transpose(0, 3, 1, 2)
    out = spec.preprocess(x)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(),  # the recognizers: 1/127.5 is not a power of two
        ModelSpec(task="detection", std=(128.0, 128.0, 128.0)),
        ModelSpec(color_order="BGR", mean=(104.0, 117.0, 123.0), std=(58.0, 57.0, 59.0)),
    ],
)
def test_uint8_preprocess_is_bit_identical_to_the_float32_formula_and_opencv(spec):
    """uint8 NCHW input gives exactly the float32 formula (every one of the 256 values in every channel, a
    real-size 640 canvas, a non-contiguous batch, an empty batch), whichever path converts it (OpenCV's fused
    ``blobFromImages`` where one std serves all channels, numpy otherwise), so the engines that convert pixels
    themselves (OpenVINO's) can be held to it."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    ramp = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (1, 256, 3)).copy()[None]
    canvas = rng.integers(0, 256, (1, 640, 640, 3), dtype=np.uint8)
    strided = rng.integers(0, 256, (4, 30, 40, 3), dtype=np.uint8)[::2, :, ::-1]  # views: not contiguous
    for x in (ramp, canvas, strided):
        src = (x[..., ::-1] if spec.color_order == "BGR" else x).astype(np.float32)
        want = ((src - np.asarray(spec.mean, np.float32)) * (1.0 / np.asarray(spec.std, np.float32))).transpose(
            0, 3, 1, 2
        )
        got = spec.preprocess(x)
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        if len(set(spec.std)) == 1:
            blob = cv2.dnn.blobFromImages(
                list(np.ascontiguousarray(x)), 1.0 / spec.std[0], (x.shape[2], x.shape[1]), spec.mean,
                swapRB=spec.color_order == "BGR",
            )  # fmt: skip
            np.testing.assert_array_equal(got, blob)
    assert spec.preprocess(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 3, 8, 8)
