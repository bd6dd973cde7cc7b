"""ONNX Runtime sessions: one shared thread pool by default, with outputs identical to per-session pools."""

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
fa = FaceAnalyzer()
faces = fa.analyze(sys.argv[1])
np.save(sys.argv[2], np.stack([f.embedding for f in faces]))
print(runtime.thread_pool_mode(), runtime.shared_pool_threads())
"""


def test_shared_pool_gives_bit_identical_embeddings(tmp_path: Path, vectron_dir: Path) -> None:
    outs = {}
    for mode in ("shared", "session"):
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(vectron_dir / "gdp.jpg"), str(tmp_path / f"{mode}.npy")],
            env={**os.environ, "ARCFACE_ORT_POOL": mode},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        outs[mode] = res.stdout.split()
    assert outs["shared"][0] == "shared" and outs["shared"][1] != "None"  # the process-wide pool was created
    assert outs["session"] == ["session", "None"]  # and not in per-session mode
    np.testing.assert_array_equal(np.load(tmp_path / "shared.npy"), np.load(tmp_path / "session.npy"))


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
