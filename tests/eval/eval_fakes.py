"""Fakes for the evaluation tests: deterministic embedders and a fake analyzer (no model files)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from arcface.embed.base import l2_normalize
from arcface.spec import ModelSpec


class PatternEmbedder:
    """Embeds a crop as its 8x8 colour thumbnail, mean-centred and L2-normalised (records its calls)."""

    def __init__(self, size: int = 112) -> None:
        self.spec = ModelSpec(input_size=(size, size), embedding_dim=192)
        self.calls: list[tuple[tuple[int, ...], bool]] = []

    @property
    def dim(self) -> int:
        return 192

    def raw(self, crops: np.ndarray) -> np.ndarray:
        small = np.stack([cv2.resize(c, (8, 8), interpolation=cv2.INTER_AREA) for c in crops])
        x = small.reshape(len(crops), -1).astype(np.float32)
        return x - x.mean(axis=1, keepdims=True)

    def embed(self, crops: np.ndarray, flip: bool = False, batch_size: int = 128) -> np.ndarray:
        crops = np.asarray(crops)
        assert crops.dtype == np.uint8 and crops.shape[1:] == (self.spec.input_size[1], self.spec.input_size[0], 3)
        self.calls.append((crops.shape, flip))
        f = self.raw(crops)
        if flip:
            f = f + self.raw(crops[:, :, ::-1])
        return l2_normalize(f)


class CodebookEmbedder:
    """Maps a crop to ``codebook[k]`` where ``k`` is the crop's mean red value divided by ``step``.

    Images are painted a uniform colour encoding their key, so the embedding of every image is known
    in advance (and survives JPEG compression).
    """

    def __init__(self, codebook: np.ndarray, step: int = 4, size: int = 112) -> None:
        self.codebook = l2_normalize(codebook)
        self.step = step
        self.spec = ModelSpec(input_size=(size, size), embedding_dim=codebook.shape[1])

    @property
    def dim(self) -> int:
        return self.codebook.shape[1]

    def key(self, crop: np.ndarray) -> int:
        return int(round(float(crop[..., 0].mean()) / self.step))

    def embed(self, crops: np.ndarray, flip: bool = False, batch_size: int = 128) -> np.ndarray:
        return self.codebook[[self.key(c) for c in crops]]


def key_image(key: int, step: int = 4, size: int = 112) -> np.ndarray:
    """A uniform RGB image whose red channel encodes ``key`` for :class:`CodebookEmbedder`."""
    img = np.full((size, size, 3), 128, np.uint8)
    img[..., 0] = key * step
    return img


@dataclass
class FakeDetections:
    boxes: np.ndarray
    scores: np.ndarray
    kps: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class FakeDetector:
    """Finds a 'face' only in images whose top-left 8x8 block is not (near) black; box = centre half."""

    def detect(self, image: np.ndarray) -> FakeDetections:
        h, w = image.shape[:2]
        if image[:8, :8].mean() < 8:
            return FakeDetections(
                np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
            )
        box = np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], np.float32)
        kps = np.tile(np.array([[w / 2, h / 2]], np.float32), (1, 5, 1))
        return FakeDetections(box, np.array([0.9], np.float32), kps)


class FakeAnalyzer:
    def __init__(self, embedder) -> None:
        self.detector = FakeDetector()
        self.embedder = embedder


def crop_align(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """Fake aligner: resize the whole image (one crop per landmark set)."""
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for _ in range(len(kps))])
