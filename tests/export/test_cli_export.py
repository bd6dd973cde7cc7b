"""``arcface export onnx|quantize``: exit codes, clear errors, outputs."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from arcface.cli import main  # noqa: E402


def _tiny_checkpoint(tmp_path):
    from arcface.train.config import TrainConfig
    from arcface.train.models import build_backbone

    torch.manual_seed(0)
    cfg = TrainConfig.from_dict({"model": {"network": "tiny", "embedding_size": 64, "width": 8}})
    ckpt = tmp_path / "rank0.pt"
    torch.save({"backbone": build_backbone("tiny", 64, 0.0, 8).state_dict(), "config": cfg.to_dict()}, ckpt)
    return ckpt


def test_missing_checkpoint(tmp_path, capsys):
    code = main(["export", "onnx", str(tmp_path / "nope.pth"), str(tmp_path / "m.onnx")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope.pth" in err and "not found" in err


def test_unknown_arch(tmp_path, capsys):
    sd = tmp_path / "backbone.pth"
    torch.save({"w": torch.zeros(1)}, sd)
    assert main(["export", "onnx", str(sd), str(tmp_path / "m.onnx"), "--arch", "resnet9000"]) == 2
    err = capsys.readouterr().err
    assert "unknown arch 'resnet9000'" in err and "iresnet50" in err
    assert main(["export", "onnx", str(sd), str(tmp_path / "m.onnx")]) == 2
    assert "--arch" in capsys.readouterr().err


def test_unknown_pack_name(tmp_path, capsys):
    assert main(["export", "onnx", "no_such_pack", str(tmp_path / "m.onnx")]) == 2
    assert "not a model pack" in capsys.readouterr().err


def test_export_then_quantize(tmp_path, capsys, real_crops):
    from arcface.imageio import save_image

    ckpt = _tiny_checkpoint(tmp_path)
    out = tmp_path / "model" / "tiny.onnx"
    assert main(["export", "onnx", str(ckpt), str(out)]) == 0
    text = capsys.readouterr().out
    assert "parity torch vs onnxruntime, batch 7: min cosine" in text
    assert out.is_file() and (out.parent / "config.json").is_file()

    assert main(["export", "onnx", str(ckpt), str(tmp_path / "j" / "tiny.onnx"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["arch"] == "tiny" and min(res["parity_min_cosine"].values()) >= 0.9999

    calib = tmp_path / "calib"
    calib.mkdir()
    for i, crop in enumerate(real_crops[:6]):  # 112x112 images are taken as aligned crops
        save_image(calib / f"{i}.png", crop)
    q = tmp_path / "model" / "tiny_int8.onnx"
    assert main(["export", "quantize", str(out), str(q), "--calib", str(calib), "--no-eval"]) == 0
    assert "6 calibration faces" in capsys.readouterr().out
    assert q.is_file() and (q.parent / "tiny_int8.json").is_file()

    assert main(["export", "quantize", str(tmp_path / "none.onnx"), str(q)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["export", "quantize", str(out), str(q), "--calib", str(tmp_path / "nodir")]) == 2
    assert "calibration folder not found" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["bgr-uint8", "rgb-uint8"])
def test_uint8_input_export_fed_raw_bytes_equals_the_library(fmt, tmp_path, capsys, analyzer, wheel_images):
    """``--input bgr-uint8``: a device feeds camera bytes (BGR, NCHW, 0..255) and gets the library's embeddings."""
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / fmt / "rec.onnx"
    assert main(["export", "onnx", "buffalo_sc", str(out), "--input", fmt, "--with-detector", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert min(res["parity_min_cosine"].values()) >= 0.9999 and res["pack_json"]
    cfg = json.loads((out.parent / "config.json").read_text())
    assert cfg["input_dtype"] == "uint8" and cfg["extra"]["input"]["dtype"] == "uint8"
    assert cfg["color_order"] == fmt[:3].upper() and cfg["extra"]["baked"]["mean"] == [127.5] * 3

    faces = analyzer.analyze(wheel_images["gdp.jpg"], with_crops=True)
    crops = np.stack([f.crop for f in faces])  # RGB, as the library holds them
    raw = crops[..., ::-1] if fmt == "bgr-uint8" else crops
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    emb = sess.run(None, {"input": np.ascontiguousarray(raw.transpose(0, 3, 1, 2))})[0]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = np.stack([f.embedding for f in faces])
    assert float(np.sum(emb * ref, axis=1).min()) >= 0.9999

    # the folder is a pack: the library feeds it through the spec's uint8 path
    from arcface.pipeline import FaceAnalyzer

    mine = FaceAnalyzer(pack=out.parent).analyze(wheel_images["gdp.jpg"])
    assert float(min(a.embedding @ b.embedding for a, b in zip(mine, faces, strict=True))) >= 0.9999


def test_openvino_export_matches_onnx_runtime(tmp_path, capsys, analyzer, wheel_images):
    ov = pytest.importorskip("openvino")
    import numpy as np

    out = tmp_path / "ov"
    assert main(["export", "openvino", "buffalo_sc", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert min(res["parity_min_cosine"].values()) >= 0.9999 and (out / "model.bin").is_file()
    faces = analyzer.analyze(wheel_images["gdp.jpg"], with_crops=True)
    crops = np.stack([f.crop for f in faces])
    from arcface.spec import ModelSpec

    spec = ModelSpec.from_json(out / "config.json")
    model = ov.Core().compile_model(str(out / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    emb = model(spec.preprocess(crops))[model.output(0)]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert float(np.sum(emb * np.stack([f.embedding for f in faces]), axis=1).min()) >= 0.9999


def test_nnarchive_validates_with_luxonis_schema(tmp_path, capsys, analyzer, wheel_images):
    import tarfile

    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "arcface_mbf.tar.xz"
    assert main(["export", "nnarchive", "buffalo_sc", str(out)]) == 0
    assert "BGR" in capsys.readouterr().out
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["arcface_mbf.onnx", "config.json"]
        cfg = json.load(tar.extractfile("config.json"))
        (tmp_path / "x").mkdir()
        tar.extract("arcface_mbf.onnx", tmp_path / "x")
    inp = cfg["model"]["inputs"][0]
    assert inp["dtype"] == "uint8" and inp["shape"] == [1, 3, 112, 112]
    assert inp["preprocessing"]["dai_type"] == "BGR888p" and cfg["model"]["metadata"]["path"] == "arcface_mbf.onnx"
    lux = pytest.importorskip("luxonis_ml.nn_archive")
    lux.Config(**cfg)  # Luxonis' own pydantic schema: raises on any deviation
    try:  # DepthAI's own loader, where its (large) wheel is installed
        import depthai
    except ImportError:
        depthai = None
    if depthai is not None:
        archive = depthai.NNArchive(str(out))
        assert (archive.getInputWidth(), archive.getInputHeight()) == (112, 112)
    # the archived model, fed one raw BGR face as a camera gives it, matches the library
    face = analyzer.analyze(wheel_images["yaoming.jpg"], with_crops=True)[0]
    sess = ort.InferenceSession(str(tmp_path / "x" / "arcface_mbf.onnx"), providers=["CPUExecutionProvider"])
    emb = sess.run(None, {"input": np.ascontiguousarray(face.crop[None, ..., ::-1].transpose(0, 3, 1, 2))})[0][0]
    assert float(emb @ face.embedding / np.linalg.norm(emb)) >= 0.9999


def test_detector_nnarchive_describes_its_outputs(tmp_path, capsys, analyzer, wheel_images):
    """The SCRFD detector archived with a fixed 640x640 input; its outputs decode to the library's detections."""
    import tarfile

    import numpy as np
    import onnxruntime as ort

    from arcface.detect.scrfd import letterbox

    out = tmp_path / "scrfd.tar.xz"
    assert main(["export", "nnarchive", "buffalo_sc", str(out), "--detector", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_output_difference"] < 1e-5
    with tarfile.open(out) as tar:
        cfg = json.load(tar.extractfile("config.json"))
        blob = tar.extractfile("scrfd.onnx").read()
    model = cfg["model"]
    assert model["inputs"][0]["shape"] == [1, 3, 640, 640] and model["inputs"][0]["preprocessing"]["scale"] == [128] * 3
    assert [o["shape"] for o in model["outputs"][:3]] == [[1, 12800, 1], [1, 3200, 1], [1, 800, 1]]
    head = model["heads"][0]
    assert head["parser"] == "SCRFDParser" and head["metadata"]["feat_stride_fpn"] == [8, 16, 32]
    lux = pytest.importorskip("luxonis_ml.nn_archive")
    lux.Config(**cfg)
    # decoding the archived graph's outputs as the metadata says gives the library's detections
    image = wheel_images["gdp.jpg"]
    canvas, box = letterbox(image, (640, 640))
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {model["inputs"][0]["name"]: analyzer.pack.detector_spec.preprocess(canvas[None])})
    det = analyzer.detector.decode_outputs(outs, box, image.shape[:2])
    ref = analyzer.detector._finish(
        analyzer.detector._run_canvas([image], (640, 640), 1, None, 0.5), 0.5, image.shape[:2], "detector"
    )  # the library's own run on the same canvas
    np.testing.assert_allclose(det.kps, ref.kps, atol=1e-3)
