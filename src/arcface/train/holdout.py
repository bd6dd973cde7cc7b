"""Held-out images of the training identities: kept out of training, used to calibrate the trained model.

``data.holdout=F`` keeps a seeded fraction ``F`` of each identity's images (identities with at least 3
images; at least one image each) out of training and lists them in ``RUN/holdout.tsv``::

    # dataset<TAB><data.path>
    <key><TAB><label>

``arcface export onnx RUN OUT.onnx`` then embeds them with the exported file, calibrates a cosine threshold
on all their pairs (:func:`calibrate_holdout`) and writes it to ``thresholds.json`` beside ``OUT.onnx``, where
:mod:`arcface.thresholds` finds it. Needs no torch.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.io_utils import atomic_write_text

HOLDOUT_FILE = "holdout.tsv"
#: Target false accept rate of the threshold calibrated on held-out pairs.
HOLDOUT_FAR = 1e-3


def pick_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices (sorted) of the samples to hold out: ``round(fraction * n)`` (at least 1) of each class with
    ``n >= 3`` samples, chosen by a generator seeded with ``seed``."""
    rng = np.random.default_rng([seed, 4242])
    out: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 3 or fraction <= 0:
            continue
        k = min(len(idx) - 2, max(1, int(round(fraction * len(idx)))))
        out.extend(int(i) for i in rng.choice(idx, size=k, replace=False))
    return np.array(sorted(out), dtype=np.int64)


def write_holdout(path: str | os.PathLike, dataset_path: str, samples: list[tuple[str, int]]) -> Path:
    """Write ``(key, label)`` samples of the dataset at ``dataset_path`` as a ``holdout.tsv``."""
    lines = [f"# dataset\t{dataset_path}"] + [f"{k}\t{int(lab)}" for k, lab in samples]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_holdout(path: str | os.PathLike) -> tuple[str, list[str], np.ndarray]:
    """``(dataset path, keys, labels)`` of a ``holdout.tsv``."""
    p = Path(path)
    dataset, keys, labels = "", [], []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.startswith("# dataset\t"):
            dataset = line.split("\t", 1)[1]
        elif line.strip() and not line.startswith("#"):
            k, lab = line.rsplit("\t", 1)
            keys.append(k)
            labels.append(int(lab))
    if not dataset or not keys:
        raise InputError(f"{p}: not a holdout list (needs '# dataset<TAB>PATH' and key<TAB>label lines)")
    return dataset, keys, np.asarray(labels, np.int64)


def run_dir_of(checkpoint: str | os.PathLike) -> Path | None:
    """The run folder (``run.output``) of a checkpoint path: the run itself, ``checkpoints/step_N`` or its
    ``rank0.pt``."""
    p = Path(checkpoint)
    for cand in (p, p.parent, p.parent.parent, p.parent.parent.parent):
        if (cand / "config.json").is_file() and (cand / "checkpoints").is_dir():
            return cand
    return None


def calibrate_holdout(
    run_dir: str | os.PathLike, embed: Callable[[np.ndarray], np.ndarray], far: float = HOLDOUT_FAR
) -> dict[str, Any] | None:
    """Calibrate a cosine threshold on all pairs of a run's held-out images.

    Args:
        run_dir: the training run folder (``None`` returned when it has no ``holdout.tsv``).
        embed: uint8 RGB crops ``(N, 112, 112, 3)`` -> unit embeddings ``(N, D)``.
        far: target false accept rate; raised to ``10 / impostor pairs`` when too few impostors measure it.
    Returns:
        A thresholds-file entry (threshold, far, achieved FAR, TAR, pair counts, provenance).
    """
    from arcface.eval.metrics import threshold_at_far
    from arcface.train.data import open_dataset

    f = Path(run_dir) / HOLDOUT_FILE
    if not f.is_file():
        return None
    dataset_path, keys, labels = read_holdout(f)
    ds = open_dataset(dataset_path, check=False)
    pos = {k: i for i, k in enumerate(ds.keys)}
    missing = [k for k in keys if k not in pos]
    if missing:
        raise InputError(f"{f}: {len(missing)} held-out images are not in {dataset_path} (first: {missing[0]!r})")
    crops = np.stack([ds.load_rgb(pos[k]) for k in keys])
    emb = embed(crops)
    sim = emb @ emb.T
    iu = np.triu_indices(len(keys), 1)
    same = labels[iu[0]] == labels[iu[1]]
    scores = sim[iu]
    n_imp, n_gen = int((~same).sum()), int(same.sum())
    if n_gen == 0 or n_imp == 0:
        raise InputError(f"{f}: the held-out images give {n_gen} genuine and {n_imp} impostor pairs; need both")
    target = max(far, 10.0 / n_imp)
    op = threshold_at_far(scores, same, target)
    return {
        "threshold": round(float(op.threshold), 6),
        "far": target,
        "achieved_far": float(op.far),
        "tar": float(op.tar),
        "squared_l2_threshold": round(2.0 - 2.0 * float(op.threshold), 6),
        "n_genuine": n_gen,
        "n_impostor": n_imp,
        "provenance": (
            f"FAR <= {target:g} (achieved {op.far:.3g}, TAR {op.tar:.3g}) on {n_gen} genuine / {n_imp} impostor "
            f"pairs of {len(keys)} held-out training images ({f}), {dt.date.today().isoformat()}"
        ),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
