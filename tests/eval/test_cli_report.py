"""`arcface eval` / `arcface calibrate` handlers with fake models; reports (JSON, Markdown, ROC plot)."""

from __future__ import annotations

import argparse
import importlib.util
import json

import cv2
import numpy as np
import pytest
from eval_fakes import FakeDetector, PatternEmbedder, crop_align

from arcface.cli import evaluate as cli
from arcface.eval import bin_sets, calibration, report
from arcface.eval.metrics import roc_curve, summarize_verification, threshold_at_far


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    return p


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def fake_models(monkeypatch):
    made = []

    def load(spec, need_detector, engine=("onnxruntime", "f32")):
        made.append(spec)
        return cli._Model(f"fake-{spec or 'default'}", PatternEmbedder(), FakeDetector(), "ab" * 32)

    monkeypatch.setattr(cli, "_load_model", load)
    monkeypatch.setattr("arcface.eval.faces.default_aligner", lambda: crop_align)
    return made


def _toy_bin(path, n_pairs=20, seed=0):
    rng = np.random.default_rng(seed)
    images, same = [], []
    for i in range(n_pairs):
        a = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        b = a if i % 2 == 0 else rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        for base in (a, b):
            img = cv2.resize(base, (112, 112), interpolation=cv2.INTER_NEAREST).astype(float)
            images.append(np.clip(img + rng.normal(0, 30, img.shape), 0, 255).astype(np.uint8))
        same.append(i % 2 == 0)
    return bin_sets.write_bin(path, images, same)


def test_eval_bin_json_and_plot(tmp_path, capsys, fake_models):
    f = _toy_bin(tmp_path / "toy.bin")
    rc = _run(["eval", "bin", str(f), "--json", "--quiet", "--plot", str(tmp_path / "roc.png"), "--model", "m1"])
    assert rc == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    # a toy set has few impostor pairs: FAR 1e-4 cannot be measured, and eval says so (as calibrate does)
    assert out["n_impostor"] * 1e-4 < 1 and "cannot measure FAR" in out["warning"] and "1e-04" in out["warning"]
    assert "warning: fake-m1 on toy" in captured.err
    for key in ("accuracy", "std", "threshold"):
        assert isinstance(out[key], float)
    ref = bin_sets.evaluate_bin(f, PatternEmbedder())
    assert out["accuracy"] == pytest.approx(ref.accuracy) and out["threshold"] == pytest.approx(ref.threshold)
    png = (tmp_path / "roc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_bin_several_models_markdown(tmp_path, capsys, fake_models):
    f = _toy_bin(tmp_path / "toy.bin")
    rc = _run(["eval", "bin", str(f), "--quiet", "--model", "a", "--model", "b", "--output", str(tmp_path / "r.json")])
    assert rc == 0 and fake_models == ["a", "b"]
    text = capsys.readouterr().out
    assert text.count("| fake-a |") == 1 and text.count("| fake-b |") == 1
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["model"] for r in saved["results"]] == ["fake-a", "fake-b"]


def test_markdown_table_and_json_helpers(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.5
    s = rng.normal(size=300) * 0.2 + y * 0.5
    d = {"model": "m", "dataset": "d", **summarize_verification(s, y, fars=(1e-2, 1e-1)).to_dict()}
    table = report.markdown_table([d])
    head, sep, row = table.splitlines()
    assert "TAR@FAR=1e-02 %" in head and row.count("|") == head.count("|")
    assert f"{100 * d['accuracy']:.2f} ± {100 * d['std']:.2f}" in row
    assert f"{d['threshold']:.4f}" in row and f"{2 - 2 * d['threshold']:.4f}" in row
    p = report.write_json(tmp_path / "x.json", {"a": np.float32(1.5), "b": np.arange(2), "c": float("inf")})
    assert json.loads(p.read_text()) == {"a": 1.5, "b": [0, 1], "c": None}


def test_plot_roc_several_models(tmp_path):
    rng = np.random.default_rng(1)
    curves = []
    for k in range(3):
        y = rng.random(500) < 0.5
        r = roc_curve(rng.normal(size=500) + y * (k + 1), y)
        curves.append((f"model {k}", r.fpr, r.tpr))
    out = report.plot_roc(curves, tmp_path / "sub" / "roc.png", title="t")
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 200


def test_calibrate_npz_and_write(tmp_path, capsys, fake_models):
    rng = np.random.default_rng(2)
    labels = rng.random(2000) < 0.3
    scores = rng.normal(size=2000) * 0.15 + labels * 0.5
    np.savez(tmp_path / "s.npz", scores=scores, labels=labels.astype(int))
    thr_file = tmp_path / "thresholds.json"
    thr_file.write_text(json.dumps({"recognizers": {"other": {"threshold": 0.4, "provenance": "x"}}}))
    rc = _run(["calibrate", str(tmp_path / "s.npz"), "--far", "1e-2", "--json", "--write", str(thr_file)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    ref = threshold_at_far(scores, labels, 1e-2)
    assert out["threshold"] == pytest.approx(ref.threshold) and out["far"] <= 1e-2
    assert out["tar"] == pytest.approx(np.mean(scores[labels] >= out["threshold"]))
    table = json.loads(thr_file.read_text())["recognizers"]
    assert set(table) == {"other", "ab" * 32}
    entry = table["ab" * 32]
    assert entry["threshold"] == pytest.approx(ref.threshold) and entry["far"] == 1e-2
    assert entry["pairs_file"] == "s.npz" and entry["n_pairs"] == 2000 and "s.npz" in entry["provenance"]
    assert entry["model_sha256"] == "ab" * 32 and entry["date"]


def test_calibrate_csv_through_detector(tmp_path, capsys, fake_models):
    rng = np.random.default_rng(3)
    bases = [rng.integers(30, 256, (8, 8, 3)).astype(np.uint8) for _ in range(4)]
    paths = []
    for i, b in enumerate(bases):
        for k in range(2):
            img = cv2.resize(b, (96, 96), interpolation=cv2.INTER_NEAREST)
            img = np.clip(img + rng.normal(0, 10, img.shape), 1, 255).astype(np.uint8)
            name = f"p{i}_{k}.png"
            cv2.imwrite(str(tmp_path / name), img)
            paths.append(name)
    dark = np.zeros((96, 96, 3), np.uint8)  # the fake detector finds no face here
    cv2.imwrite(str(tmp_path / "noface.png"), dark)
    rows = ["path_a,path_b,same"] + [f"p{i}_0.png,p{i}_1.png,1" for i in range(4)]
    rows += [f"p{i}_0.png,p{j}_1.png,0" for i in range(4) for j in range(4) if i != j]
    rows += ["noface.png,p0_0.png,0"]
    png = (tmp_path / "p1_0.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(png[: len(png) // 2])  # a truncated file must not sink the run
    rows += ["broken.png,p2_0.png,0"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    rc = _run(["calibrate", str(tmp_path / "pairs.csv"), "--far", "0.1", "--json", "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["n_pairs"] == 16 and out["n_genuine"] == 4
    assert out["images_without_face"][0].endswith("noface.png")
    assert out["errors"][0]["source"].endswith("broken.png") and "broken.png" in captured.err
    with pytest.raises(Exception, match="unreadable image"):  # --strict: any unreadable file is an error
        _run(["calibrate", str(tmp_path / "pairs.csv"), "--far", "0.1", "--json", "--quiet", "--strict"])
    pl = calibration.read_pairs_csv(tmp_path / "pairs.csv")
    assert len(pl.a) == 18 and pl.a[0] == tmp_path / "p0_0.png"


def test_face_crops_survive_an_unreadable_photo(tmp_path) -> None:
    """Evaluation protocols keep their pairs: an unreadable photo is counted and scored as a grey crop."""
    from arcface.eval.faces import CropStats, iter_face_crops

    good = np.full((96, 96, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "ok.png"), good)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    stats = CropStats()
    crops = list(
        iter_face_crops([tmp_path / "ok.png", tmp_path / "bad.jpg"], FakeDetector(), crop_align, 112, stats=stats)
    )
    assert len(crops) == 2 and (crops[1] == 128).all()
    d = stats.to_dict()
    assert d["n_images"] == 2 and d["n_unreadable"] == 1 and d["unreadable"][0]["source"].endswith("bad.jpg")


def test_calibrate_bad_inputs(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b,same\na.jpg,b.jpg,1\na.jpg,b.jpg,maybe\n")
    with pytest.raises(cli.InputError, match="row 2"):
        calibration.read_pairs_csv(tmp_path / "bad.csv")
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(cli.InputError, match="scores"):
        calibration.read_scores_npz(tmp_path / "bad.npz")
    (tmp_path / "t.json").write_text("[1, 2]")
    with pytest.raises(cli.InputError):
        calibration.write_threshold(tmp_path / "t.json", "x", {})


def test_resolve_embedder_errors_and_onnx(tmp_path, vectron_dir):
    from arcface.errors import InputError
    from arcface.eval.models import input_size, model_digest, resolve_embedder

    with pytest.raises(InputError, match="not found"):
        resolve_embedder(str(tmp_path / "missing.onnx"))
    onnx = vectron_dir / "w600k_mbf.onnx"
    emb = resolve_embedder(str(onnx))
    assert input_size(emb) == (112, 112)
    out = emb.embed(np.zeros((2, 112, 112, 3), np.uint8), flip=True)
    assert out.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    import hashlib

    assert model_digest(str(onnx)) == hashlib.sha256(onnx.read_bytes()).hexdigest()


def test_calibrate_cli_real_pipeline(tmp_path, capsys, shared_data, vectron_dir):
    """`arcface calibrate` end to end on the labelled face_recognition photos with the default pack."""
    pytest.importorskip("arcface.pipeline")
    from arcface.cli import main

    src = shared_data / "face_recognition_by_identity"
    files = sorted(q for q in src.glob("*/*") if q.is_file())
    rows = ["path_a,path_b,same"]
    for i, a in enumerate(files):
        for b in files[i + 1 :]:
            rows.append(f"{a},{b},{int(a.parent == b.parent)}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    thr = tmp_path / "thr.json"
    rc = main(["calibrate", str(tmp_path / "pairs.csv"), "--far", "0.05", "--json", "--quiet", "--write", str(thr)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_pairs"] == len(rows) - 1 and out["images_without_face"] == []
    assert out["far"] <= 0.05 and out["tar"] >= 0.9  # a real recognizer: genuine pairs above the threshold
    assert 0.0 < out["threshold"] < 0.9
    entry = json.loads(thr.read_text())["recognizers"][out["model_sha256"]]
    assert entry["threshold"] == out["threshold"] and entry["n_pairs"] == out["n_pairs"]
    # calibrated again with another engine: stored under 'engines', the reference entry kept; each engine then
    # reads its own threshold (FaceAnalyzer and the CLI alike)
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    args = [str(tmp_path / "pairs.csv"), "--far", "0.05", "--json", "--quiet", "--write", str(thr)]
    assert main(["calibrate", *args, "--runtime", "openvino", "--precision", "f32"]) == 0
    ov_out = json.loads(capsys.readouterr().out)
    assert ov_out["engine"] == "openvino/f32"
    entry = json.loads(thr.read_text())["recognizers"][out["model_sha256"]]
    assert entry["threshold"] == out["threshold"] and entry["engine"] == "onnxruntime/f32"
    assert entry["engines"]["openvino/f32"]["threshold"] == ov_out["threshold"]
    from arcface.pipeline import FaceAnalyzer

    ov = FaceAnalyzer(runtime="openvino", precision="f32", thresholds=thr).threshold
    assert (ov.value, ov.engine, ov.source) == (ov_out["threshold"], "openvino/f32", str(thr))
    assert "used with" not in ov.provenance  # its own calibration, no cross-engine note
    ref = FaceAnalyzer(thresholds=thr).threshold
    assert ref.value == out["threshold"]
    # recalibrating the reference keeps the other engine's threshold
    assert main(["calibrate", *args]) == 0
    capsys.readouterr()
    assert "openvino/f32" in json.loads(thr.read_text())["recognizers"][out["model_sha256"]]["engines"]
