"""Sub-center ArcFace data cleaning (``arcface clean``).

After training with K sub-centres per class (``head.subcenters=3``), most clean samples of a class sit
near one *dominant* sub-centre (the one most of the class's samples are nearest to), while mislabelled
samples sit near the other sub-centres or far from all of them. The rule: drop a sample when the angle
between its embedding and its class's dominant sub-centre exceeds ``threshold`` (default 75 degrees).

Outputs (in ``OUT``): ``cleaned.lst`` (``key<TAB>label`` of kept samples, readable by
``data.list_file=``), ``dropped.lst``, ``clean_report.json`` (totals and kept/dropped per class),
``angles.png`` (histogram of the angles in degrees, threshold marked), and optionally ``cleaned.rec`` /
``cleaned.idx`` with the kept samples (classes renumbered compactly; ``label_map.json`` gives new -> old).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from arcface.errors import InputError
from arcface.io_utils import atomic_write_text
from arcface.train.verification import embed_images

DEFAULT_THRESHOLD_DEG = 75.0


@dataclass
class CleanResult:
    """Per-sample outcome: ``keep`` (bool), ``angles`` (radians to the dominant sub-centre),
    ``dominant`` (the class's dominant sub-centre index), and the threshold in degrees."""

    keep: np.ndarray
    angles: np.ndarray
    dominant: np.ndarray
    threshold_deg: float


def dominant_angles(
    embeddings: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dominant sub-centre index and angle (radians) of every sample, the counts taken over all samples.

    ``weight`` is ``(C * K, D)``, rows ``c*K .. c*K+K-1`` being class ``c``'s sub-centres.
    """
    if weight.shape[0] % k:
        raise InputError(f"head weight has {weight.shape[0]} rows, not a multiple of K={k}")
    num_classes = weight.shape[0] // k
    from arcface.nn.subcenter import SubCenterArcFace

    head = SubCenterArcFace(weight.shape[1], num_classes, k=k)
    with torch.no_grad():
        head.weight.copy_(weight)
    dom, ang = head.dominant(embeddings, labels)
    return dom.numpy(), ang.numpy()


def clean_from_arrays(
    backbone: nn.Module,
    weight: torch.Tensor,
    k: int,
    images: np.ndarray,
    labels: np.ndarray,
    threshold_deg: float = DEFAULT_THRESHOLD_DEG,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
) -> CleanResult:
    """Apply the dominant-sub-centre rule to in-memory ``uint8`` RGB images and their labels."""
    emb = torch.from_numpy(embed_images(backbone, images, device, batch_size, flip=True))
    return _decide(emb, torch.as_tensor(labels, dtype=torch.long), weight.cpu(), k, threshold_deg)


def _decide(emb: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, k: int, thr: float) -> CleanResult:
    if int(labels.max()) * k >= weight.shape[0]:
        raise InputError(f"labels go up to {int(labels.max())} but the head has {weight.shape[0] // k} classes")
    dom, ang = dominant_angles(emb, labels, weight, k)
    keep = ang <= math.radians(thr)
    return CleanResult(keep=keep, angles=ang, dominant=dom, threshold_deg=thr)


def embed_dataset(
    backbone: nn.Module, dataset: Any, device: str | torch.device = "cpu", batch_size: int = 128, progress: bool = True
) -> torch.Tensor:
    """Unit embeddings of every sample of a :class:`~arcface.train.data.FaceDataset` (no augmentation)."""
    n = len(dataset)
    out = []
    rng = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        rng = tqdm(rng, desc="embed", unit="batch")
    for i in rng:
        imgs = np.stack([dataset.load_rgb(j) for j in range(i, min(n, i + batch_size))])
        out.append(torch.from_numpy(embed_images(backbone, imgs, device, batch_size, flip=True)))
    return torch.cat(out)


def write_report(
    out_dir: str | os.PathLike, keys: list[str], labels: np.ndarray, result: CleanResult
) -> dict[str, Any]:
    """Write ``cleaned.lst``, ``dropped.lst``, ``clean_report.json`` and ``angles.png``; return the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def write_list(name: str, mask: np.ndarray) -> None:
        lines = (f"{key}\t{int(lab)}\n" for key, lab, m in zip(keys, labels, mask, strict=True) if m)
        atomic_write_text(out / name, "".join(lines))

    write_list("cleaned.lst", result.keep)
    write_list("dropped.lst", ~result.keep)
    per_class: dict[str, dict[str, int]] = {}
    for c in np.unique(labels):
        m = labels == c
        per_class[str(int(c))] = {"kept": int(result.keep[m].sum()), "dropped": int((~result.keep[m]).sum())}
    deg = np.degrees(result.angles)
    report = {
        "threshold_deg": result.threshold_deg,
        "samples": int(len(keys)),
        "kept": int(result.keep.sum()),
        "dropped": int((~result.keep).sum()),
        "classes": len(per_class),
        "classes_emptied": sum(1 for v in per_class.values() if v["kept"] == 0),
        "angle_deg_percentiles": {str(p): float(np.percentile(deg, p)) for p in (5, 25, 50, 75, 95)},
        "per_class": per_class,
    }
    atomic_write_text(out / "clean_report.json", json.dumps(report, indent=1) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(deg, bins=90, range=(0, 180), color="tab:blue")
        ax.axvline(
            result.threshold_deg, color="tab:red", linestyle="--", label=f"threshold {result.threshold_deg:g} deg"
        )
        ax.set_xlabel("angle to the dominant sub-center (degrees)")
        ax.set_ylabel("samples")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "angles.png", dpi=100)
        plt.close(fig)
    except ImportError:  # matplotlib is the eval extra
        report["plot"] = "matplotlib not installed: no angles.png"
    return report


def write_cleaned_rec(out_dir: str | os.PathLike, dataset: Any, keep: np.ndarray) -> dict[int, int]:
    """Repack the kept samples as ``cleaned.rec``/``cleaned.idx`` (classes renumbered; returns new -> old)."""
    from arcface.train.recordio import write_insightface_rec

    idx = np.flatnonzero(keep)
    labels = dataset.labels[idx]
    order = idx[np.argsort(labels, kind="stable")]
    old = np.unique(labels)
    remap = {int(o): n for n, o in enumerate(old)}

    def samples():
        for j in order:
            yield dataset.read_bytes(int(j)), remap[int(dataset.labels[j])]

    write_insightface_rec(Path(out_dir) / "cleaned", samples(), num_samples=len(order), progress=False)
    mapping = {n: int(o) for n, o in enumerate(old)}
    (Path(out_dir) / "label_map.json").write_text(json.dumps(mapping) + "\n", encoding="utf-8")
    return mapping


def clean_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    threshold_deg: float = DEFAULT_THRESHOLD_DEG,
    write_rec: bool = False,
    list_file: str | None = None,
    device: str = "cpu",
    batch_size: int = 128,
    progress: bool = True,
) -> dict[str, Any]:
    """Clean ``data`` with a sub-centre checkpoint of :class:`~arcface.train.trainer.Trainer`."""
    from arcface.train import checkpoint as ckpt
    from arcface.train.config import TrainConfig
    from arcface.train.data import open_dataset
    from arcface.train.models import build_backbone

    state = ckpt.load_rank_file(checkpoint, 0)
    if "config" not in state or "backbone" not in state:
        raise InputError(f"{checkpoint}: not a training checkpoint (no config/backbone)")
    cfg = TrainConfig.from_dict(state["config"])
    weight, k = ckpt.load_head_weight(checkpoint)
    if k < 2:
        raise InputError(f"{checkpoint}: trained with {k} sub-centre per class; cleaning needs K >= 2 (K=3)")
    backbone = build_backbone(cfg.model.network, cfg.model.embedding_size, 0.0, cfg.model.width, cfg.model.norm)
    backbone.load_state_dict(state["backbone"])
    backbone.to(device)
    dataset = open_dataset(data, None, list_file)
    emb = embed_dataset(backbone, dataset, device, batch_size, progress)
    result = _decide(emb, torch.as_tensor(dataset.labels), weight, k, threshold_deg)
    report = write_report(out_dir, dataset.keys, dataset.labels, result)
    if write_rec:
        write_cleaned_rec(out_dir, dataset, result.keep)
        report["rec"] = str(Path(out_dir) / "cleaned.rec")
    return report
