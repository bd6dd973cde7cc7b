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
print(runtime.thread_pool_mode(), runtime._SHARED_POOL)
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
