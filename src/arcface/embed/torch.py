"""Torch embedder: any backbone of :mod:`arcface.nn` behind the :class:`~arcface.embed.base.Embedder` protocol.

Needs the ``train`` extra (torch). Importing this module imports torch; ``arcface.embed`` itself does not.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from arcface.embed.base import l2_normalize
from arcface.errors import InputError, require
from arcface.spec import ARCFACE_RECOGNITION, ModelSpec

torch = require("torch", "train")


class TorchEmbedder:
    """Batched embeddings from a torch recognition model.

    Args:
        model: a module mapping ``(N, 3, H, W)`` float input (as ``spec`` prescribes) to ``(N, D)``.
        spec: input conventions (default: RGB, ``(x - 127.5) / 127.5``, NCHW, 112x112).
        device: torch device for the model and its inputs (``"cpu"``, ``"cuda"``, ...).

    ``embed(crops)`` takes uint8 RGB aligned crops ``(N, H, W, 3)`` and returns float32 ``(N, D)``
    L2-normalised embeddings; ``flip=True`` sums the raw outputs of each crop and its mirror first.
    The model is put in eval mode.
    """

    def __init__(self, model: Any, spec: ModelSpec = ARCFACE_RECOGNITION, device: str = "cpu") -> None:
        self.spec = spec
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._dim: int | None = None  # read off the model's output on first use

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        arch: str | None = None,
        spec: ModelSpec = ARCFACE_RECOGNITION,
        device: str = "cpu",
    ) -> TorchEmbedder:
        """Load an arcface_torch ``backbone.pth`` (or a dict ``{"arch": ..., "state_dict": ...}``).

        ``arch`` (a registered backbone name) is required unless the checkpoint names it.
        """
        from arcface import torchfile
        from arcface.nn.convert import load_arcface_torch

        ckpt = torchfile.load(path, "checkpoint")
        if isinstance(ckpt, dict) and "state_dict" in ckpt:
            arch = arch or ckpt.get("arch")
        if arch is None:
            raise InputError(f"{path}: the checkpoint does not name its architecture; pass arch=")
        return cls(load_arcface_torch(ckpt, arch), spec, device)

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike,
        arch: str | None = None,
        spec: ModelSpec = ARCFACE_RECOGNITION,
        device: str = "cpu",
    ) -> TorchEmbedder:
        """Import an insightface ONNX recognizer (see :func:`arcface.nn.convert.load_onnx_recognizer`)."""
        from arcface.nn.convert import load_onnx_recognizer

        return cls(load_onnx_recognizer(path, arch), spec, device)

    @property
    def dim(self) -> int:
        """Embedding length D (the model's output width, measured once on a blank crop)."""
        if self._dim is None:
            self._dim = int(self.raw(np.zeros((1, *self._hw(), 3), np.uint8)).shape[1])
        return self._dim

    def _hw(self) -> tuple[int, int]:
        w, h = self.spec.input_size or (112, 112)
        return h, w

    def _check(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        h, w = self._hw()
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3):
            raise InputError(f"crops must have shape (N, {h}, {w}, 3) RGB, got {crops.shape}")
        return crops

    def raw(self, crops: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Un-normalised model outputs ``(N, D)`` float32."""
        crops = self._check(crops)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        outs = []
        with torch.inference_mode():
            for s in range(0, len(crops), batch_size):
                blob = torch.from_numpy(self.spec.preprocess(crops[s : s + batch_size])).to(self.device)
                outs.append(self.model(blob).float().cpu().numpy())
        if not outs:
            return np.zeros((0, self.dim), np.float32)
        out = np.concatenate(outs).astype(np.float32, copy=False)
        self._dim = out.shape[1]
        return out

    def embed(self, crops: np.ndarray, flip: bool = False, batch_size: int = 128) -> np.ndarray:
        """L2-normalised embeddings ``(N, D)`` float32."""
        crops = self._check(crops)
        feats = self.raw(crops, batch_size)
        if flip:
            feats = feats + self.raw(np.ascontiguousarray(crops[:, :, ::-1]), batch_size)
        return l2_normalize(feats)
