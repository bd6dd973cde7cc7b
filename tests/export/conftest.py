"""Fixtures for the export tests: real aligned face crops from the default pack's photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytest.importorskip("onnx")


@pytest.fixture(scope="session")
def real_crops(vectron_dir: Path) -> np.ndarray:
    """Sixteen aligned faces (SCRFD + ArcFace template) from the wheel's photos: uint8 (16, 112, 112, 3) RGB."""
    from arcface.export.crops import crops_from_images

    crops = crops_from_images([vectron_dir / n for n in ("players.jpg", "gdp.jpg", "yaoming.jpg")], limit=16)
    assert crops.shape == (16, 112, 112, 3) and crops.dtype == np.uint8
    return crops


@pytest.fixture(scope="session")
def held_out_crops(vectron_dir: Path, real_crops: np.ndarray) -> np.ndarray:
    """Faces not among ``real_crops``: ../shared/data's deepface photos when present, else the wheel's last 12."""
    from arcface.export.crops import crops_from_images

    shared = SHARED_DATA if SHARED_DATA.is_dir() else None
    if shared is not None:
        paths = sorted((shared / "deepface_by_identity").glob("*/*.jpg"))[::3]
        crops = crops_from_images(paths, limit=20, largest_only=True)
        if len(crops) >= 8:
            return crops
    wheel = crops_from_images([vectron_dir / n for n in ("players.jpg", "gdp.jpg", "yaoming.jpg")])
    return wheel[16:]
