"""ONNX Runtime embedder for ArcFace recognition models."""

from __future__ import annotations

import os

import numpy as np

from arcface.embed.base import l2_normalize
from arcface.errors import InputError, ModelError
from arcface.runtime import dynamic_batch, get_session
from arcface.spec import ARCFACE_RECOGNITION, ModelSpec


class OnnxEmbedder:
    """Batched embeddings from an ONNX recognition model.

    Args:
        model_path: the ``.onnx`` file (input ``(N, 3, 112, 112)`` for insightface models).
        spec: the model's input conventions (default: RGB, ``(x - 127.5) / 127.5``, NCHW).
        threads: intra-op threads (default: all cores).
        runtime, precision: the engine (``"onnxruntime"`` or ``"openvino"``) and its precision (``"f32"``, or
            ``"bf16"`` with OpenVINO on CPUs that have it); see :mod:`arcface.runtime`.

    ``embed(crops)`` takes uint8 RGB aligned crops ``(N, H, W, 3)`` and returns float32 ``(N, D)``
    L2-normalised embeddings (see :class:`arcface.embed.base.Embedder`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        spec: ModelSpec = ARCFACE_RECOGNITION,
        threads: int | None = None,
        runtime: str = "onnxruntime",
        precision: str = "f32",
    ):
        self.spec = spec
        self.model_path = str(model_path)
        self.session = get_session(model_path, threads, runtime=runtime, precision=precision)
        inp = self.session.get_inputs()[0]
        self.input_name = spec.input_name or inp.name
        self.output_name = (spec.output_names or (self.session.get_outputs()[0].name,))[0]
        self.batched = dynamic_batch(self.session)
        w, h = spec.input_size or (112, 112)
        shape = list(inp.shape)
        want = [3, h, w] if spec.layout == "NCHW" else [h, w, 3]
        if len(shape) != 4 or any(isinstance(g, int) and g != x for g, x in zip(shape[1:], want)):
            raise ModelError(
                f"{model_path}: the recognizer's input is {shape} but its spec says {spec.layout} {w}x{h} "
                "(give a config.json beside the model with the right input_size, or another model)"
            )
        out_dim = self.session.get_outputs()[0].shape[-1]
        self._dim = int(out_dim) if isinstance(out_dim, int) else int(spec.embedding_dim or 512)

    @property
    def dim(self) -> int:
        """Embedding length D."""
        return self._dim

    def _check(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        w, h = self.spec.input_size or (112, 112)
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3):
            raise InputError(f"crops must have shape (N, {h}, {w}, 3) RGB, got {crops.shape}")
        return crops

    def raw(self, crops: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Un-normalised model outputs ``(N, D)`` float32."""
        crops = self._check(crops)
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        step = batch_size if self.batched else 1
        outs = []
        for s in range(0, len(crops), step):
            blob = self.spec.preprocess(crops[s : s + step])
            outs.append(self.session.run([self.output_name], {self.input_name: blob})[0])
        return np.concatenate(outs).astype(np.float32, copy=False).reshape(len(crops), -1)

    def embed(self, crops: np.ndarray, flip: bool = False, batch_size: int = 128) -> np.ndarray:
        """L2-normalised embeddings; ``flip=True`` sums original and mirrored outputs first."""
        crops = self._check(crops)
        feats = self.raw(crops, batch_size)
        if flip:
            feats = feats + self.raw(crops[:, :, ::-1], batch_size)
        return l2_normalize(feats)
