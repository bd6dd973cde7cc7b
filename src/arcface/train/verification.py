"""Verification callback: 10-fold accuracy of the backbone on ``.bin`` pair sets during training.

A set is consecutive image pairs plus one same/different flag per pair (the insightface ``.bin`` layout).
Embeddings are the L2-normalised sum of the image's and its horizontal flip's embeddings; the score of a
pair is their cosine. Accuracy is the LFW protocol (threshold chosen on 9 folds, measured on the 10th),
from :func:`arcface.eval.metrics.kfold_accuracy` when available, else a local equivalent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from arcface.errors import InputError
from arcface.spec import ARCFACE_RECOGNITION


@dataclass
class PairSet:
    """``images``: uint8 RGB ``(2P, 112, 112, 3)``, pairs consecutive; ``issame``: bool ``(P,)``."""

    name: str
    images: np.ndarray
    issame: np.ndarray


def load_pair_set(path: str | os.PathLike, size: int = 112) -> PairSet:
    """Load a ``.bin`` set (safely, via :mod:`arcface.eval.bin_sets`) and decode it to 112x112 RGB."""
    from arcface.eval.bin_sets import decode_image, load_bin

    bs = load_bin(path)
    imgs = []
    for i, b in enumerate(bs.images):
        img = decode_image(b, f"{path} image {i}")
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        imgs.append(img)
    return PairSet(Path(path).stem, np.stack(imgs), np.asarray(bs.issame, bool))


def kfold_accuracy(scores: np.ndarray, issame: np.ndarray, n_folds: int = 10) -> float:
    """10-fold verification accuracy of cosine ``scores`` (see :func:`arcface.eval.metrics.kfold_accuracy`)."""
    from arcface.eval.metrics import kfold_accuracy as kfold

    return float(kfold(scores, issame, n_folds=n_folds).accuracy)


@torch.no_grad()
def embed_images(
    backbone: nn.Module,
    images: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = 128,
    flip: bool = True,
) -> np.ndarray:
    """Unit embeddings ``(N, D)`` float32 of uint8 RGB ``(N, 112, 112, 3)`` images (eval mode, flip-TTA)."""
    was_training = backbone.training
    backbone.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(ARCFACE_RECOGNITION.preprocess(images[i : i + batch_size])).to(device)
            e = backbone(x).float()
            if flip:
                e = e + backbone(torch.flip(x, dims=[3])).float()
            out.append(torch.nn.functional.normalize(e, dim=1).cpu().numpy())
    finally:
        backbone.train(was_training)
    return np.concatenate(out).astype(np.float32)


class VerificationCallback:
    """Evaluates ``sets`` every ``every`` optimiser steps (rank 0) and returns ``{"val/NAME": accuracy}``."""

    def __init__(self, sets: list[PairSet], every: int, batch_size: int = 128, flip: bool = True):
        if not sets:
            raise InputError("VerificationCallback needs at least one pair set")
        self.sets, self.every, self.batch_size, self.flip = sets, every, batch_size, flip
        self.history: list[tuple[int, dict[str, float]]] = []

    @classmethod
    def from_paths(cls, names: tuple[str, ...] | list[str], val_dir: str, every: int) -> VerificationCallback:
        sets = []
        for name in names:
            p = Path(name)
            if not p.is_file() and val_dir:
                p = Path(val_dir) / (name if name.endswith(".bin") else f"{name}.bin")
            if not p.is_file():
                raise InputError(f"verification set {name!r} not found (looked for {p})")
            sets.append(load_pair_set(p))
        return cls(sets, every)

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def evaluate(self, backbone: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        results = {}
        for s in self.sets:
            emb = embed_images(backbone, s.images, device, self.batch_size, self.flip)
            scores = np.sum(emb[0::2] * emb[1::2], axis=1).astype(np.float64)
            results[f"val/{s.name}"] = kfold_accuracy(scores, s.issame)
        return results
