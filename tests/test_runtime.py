"""ONNX Runtime sessions: three thread-pool modes with identical outputs; the OpenVINO engine against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

CHILD = """
import sys, numpy as np
from arcface import runtime
from arcface.pipeline import FaceAnalyzer
fa = FaceAnalyzer(runtime="onnxruntime")
faces = fa.analyze(sys.argv[1])
np.save(sys.argv[2], np.stack([f.embedding for f in faces]))
opts = runtime.session_options()
stop = "-"  # the shared pool's sessions have no pool of their own
if opts.use_per_session_threads:
    try:
        stop = opts.get_session_config_entry("session.force_spinning_stop")
    except Exception:
        stop = "unset"
print(runtime.thread_pool_mode(), runtime.shared_pool_threads(), stop)
"""


def test_thread_pool_modes_give_bit_identical_embeddings(tmp_path: Path, vectron_dir: Path) -> None:
    """The default (per-session pools that stop spinning when a run ends), one shared pool, and ONNX Runtime's
    own spinning pools: each mode is what it says (the shared pool created only in its mode; the stop flag set
    only in the default), and all give the same embeddings bit for bit."""
    outs = {}
    for mode in ("session", "shared", "spin", None):
        env = {k: v for k, v in os.environ.items() if k != "ARCFACE_ORT_POOL"}
        if mode is not None:
            env["ARCFACE_ORT_POOL"] = mode
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(vectron_dir / "gdp.jpg"), str(tmp_path / f"{mode}.npy")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        outs[mode] = res.stdout.split()
    assert outs[None] == outs["session"] == ["session", "None", "1"]  # the default
    assert outs["shared"][0] == "shared" and outs["shared"][1] != "None" and outs["shared"][2] == "-"
    assert outs["spin"] == ["spin", "None", "unset"]
    ref = np.load(tmp_path / "session.npy")
    assert len(ref) == 5
    for mode in ("shared", "spin", None):
        np.testing.assert_array_equal(np.load(tmp_path / f"{mode}.npy"), ref)


def test_openvino_engine_f32_equals_onnxruntime_and_bf16_stays_close(analyzer, wheel_images) -> None:
    import pytest

    ov = pytest.importorskip("openvino")
    from arcface.embed.onnx import OnnxEmbedder
    from arcface.pipeline import FaceAnalyzer

    fa = FaceAnalyzer(runtime="openvino", precision="f32")
    assert fa.embedder.session.get_providers() == ["OpenVINO-CPU-f32"]
    for name in ("yaoming.jpg", "gdp.jpg"):
        mine, ref = fa.analyze(wheel_images[name]), analyzer.analyze(wheel_images[name])
        assert len(mine) == len(ref)
        for a, b in zip(mine, ref, strict=True):
            np.testing.assert_allclose(a.kps, b.kps, atol=1e-2)
            assert float(a.embedding @ b.embedding) > 0.99999
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 support in OpenVINO")
    crops = np.stack([f.crop for f in analyzer.analyze(wheel_images["players.jpg"], with_crops=True)])
    bf16 = OnnxEmbedder(analyzer.pack.recognizer, runtime="openvino", precision="bf16").embed(crops)
    cos = np.sum(bf16 * analyzer.embedder.embed(crops), axis=1)
    assert cos.min() > 0.995 and cos.mean() > 0.999  # measured here: min 0.9988, mean 0.9998 on 71 real crops


def test_cli_runtime_option(capsys, vectron_dir) -> None:
    import pytest

    pytest.importorskip("openvino")
    from arcface.cli import main

    photo = str(vectron_dir / "yaoming.jpg")
    assert main(["verify", photo, photo, "--runtime", "openvino", "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["similarity"] > 0.9999
    assert main(["verify", photo, photo, "--runtime", "onnxruntime", "--precision", "bf16"]) == 2
    assert "bf16 needs runtime='openvino'" in capsys.readouterr().err
    # with the default --runtime auto, asking for bf16 by name picks the engine that has it (where the CPU does),
    # and the threshold's provenance carries the measured agreement (it fails the bars for automatic use)
    import openvino as ov

    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert main(["verify", photo, photo, "--precision", "bf16", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert "used with openvino/bf16" in out["threshold_provenance"], out


def test_openvino_compiles_one_model_per_canvas_size_with_identical_outputs(vectron_dir: Path, monkeypatch) -> None:
    import pytest

    pytest.importorskip("openvino")
    from arcface.runtime import ov_session as sessions

    det = sessions.OpenVinoSession(vectron_dir / "scrfd_500m_bnkps.onnx", threads=2)
    rec = sessions.OpenVinoSession(vectron_dir / "w600k_mbf.onnx", threads=2)
    name = det.get_inputs()[0].name
    rng = np.random.default_rng(0)
    assert det._compiled == {}  # a detector compiles per canvas size, when first run: nothing before
    reference = sessions.OpenVinoSession(vectron_dir / "scrfd_500m_bnkps.onnx", threads=2)
    dynamic = reference._compiled_for(None).create_infer_request()
    for side in (640, 160):
        x = rng.uniform(-1, 1, (1, 3, side, side)).astype(np.float32)
        outs = det.run(None, {name: x})
        dynamic.infer({0: x})
        for i, out in enumerate(outs):  # the specialised graph computes what the dynamic one does
            np.testing.assert_allclose(out, dynamic.get_output_tensor(i).data, atol=1e-5)
        assert outs[0].shape == (1, (side // 8) ** 2 * 2, 1)  # stride-8 scores, 2 anchors per cell, by file name
    assert set(det._compiled) == {(3, 640, 640), (3, 160, 160)}  # no dynamic model compiled in vain
    # past OV_SIZED_MAX sizes, new ones run on the dynamic model (compiled then) instead of compiling again
    monkeypatch.setattr(sessions, "OV_SIZED_MAX", 2)
    x = rng.uniform(-1, 1, (1, 3, 320, 320)).astype(np.float32)
    assert det.run(["score_8"], {name: x})[0].shape == (1, 40 * 40 * 2, 1)
    assert set(det._compiled) == {None, (3, 640, 640), (3, 160, 160)}
    # the recognizer's size is fixed (only its batch is free): one model for every batch
    for n in (1, 3):
        assert rec.run(None, {rec.get_inputs()[0].name: np.zeros((n, 3, 112, 112), np.float32)})[0].shape == (n, 512)
    assert set(rec._compiled) == {None}


def test_bf16_runs_the_recognizer_in_bf16_and_the_detector_in_f32(wheel_images) -> None:
    import pytest

    ov = pytest.importorskip("openvino")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 support in OpenVINO")
    from arcface.pipeline import FaceAnalyzer
    from arcface.runtime.sessions import role_precision

    assert [role_precision(r, p) for r in ("detector", "recognizer") for p in ("bf16", "int8", "f32")] == [
        "f32", "f32", "f32", "bf16", "int8", "f32"
    ]  # fmt: skip
    bf16 = FaceAnalyzer(runtime="openvino", precision="bf16")
    f32 = FaceAnalyzer(runtime="openvino", precision="f32")
    assert bf16.detector.session.get_providers() == ["OpenVINO-CPU-f32"]
    assert bf16.embedder.session.get_providers() == ["OpenVINO-CPU-bf16"]
    mine, ref = bf16.analyze(wheel_images["players.jpg"]), f32.analyze(wheel_images["players.jpg"])
    assert len(mine) == len(ref) == 22
    for a, b in zip(mine, ref, strict=True):
        np.testing.assert_array_equal(a.kps, b.kps)  # the same f32 detector: the same alignment
        assert 0.995 < float(a.embedding @ b.embedding) < 1.0  # bf16 arithmetic in the recognizer only


OWN_PROCESS_CHILD = """
import os, sys
import arcface.cli
assert "numpy" not in sys.modules, "arcface.cli loaded numpy: OpenBLAS would read its settings too early"
arcface.cli.own_process()
from arcface.runtime import thread_pool_mode
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), os.environ.get("ARCFACE_ORT_POOL"), thread_pool_mode())
"""


def test_the_console_script_sets_blas_settings_before_numpy_loads() -> None:
    """The ``arcface`` command's process shortens OpenBLAS's spin after each product (read once, when numpy
    loads: numpy is not loaded before that), a user's own value wins, and ONNX Runtime runs in the library's
    default pool mode (per-session pools that stop spinning after each run)."""
    from arcface.cli import BLAS_THREAD_TIMEOUT

    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "ARCFACE_ORT_POOL")}
    for extra, want in (({}, BLAS_THREAD_TIMEOUT), ({"OPENBLAS_THREAD_TIMEOUT": "9"}, "9")):
        res = subprocess.run(
            [sys.executable, "-c", OWN_PROCESS_CHILD], env={**base, **extra}, capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == [want, "None", "session"]
