"""MegaFace-style identification: rank-1 rate against growing numbers of distractors.

Protocol (MegaFace Challenge 1): for each probe identity with images ``x_1..x_m``, every ordered pair
``(probe x_i, gallery mate x_j)``, ``i != j``, is one search; the gallery holds ``x_j`` plus the first
``n`` distractors. The search succeeds at rank 1 when ``cos(x_i, x_j)`` is **strictly greater** than
every ``cos(x_i, d)`` over those distractors. The rank-1 rate is reported for ``n`` in ``10^1 .. 10^6``
(capped at the number of distractors available; distractor subsets are nested: the first ``n`` in order).

The per-probe maximum over distractors is computed once per subset size, with FAISS (``IndexFlatIP``,
exact) when importable, else blockwise numpy matrix products.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.eval.models import embed_crops, fit_crop, input_size

DISTRACTOR_SIZES: tuple[int, ...] = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _max_inner_numpy(q: np.ndarray, db: np.ndarray, block: int = 65536) -> np.ndarray:
    best = np.full(len(q), -np.inf, np.float32)
    for s in range(0, len(db), block):
        np.maximum(best, (q @ db[s : s + block].T).max(axis=1), out=best)
    return best


def _max_inner_faiss(faiss: Any, q: np.ndarray, db: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(np.ascontiguousarray(db, dtype=np.float32))
    scores, _ = index.search(np.ascontiguousarray(q, dtype=np.float32), 1)
    return scores[:, 0]


def distractor_maxima(
    probes: np.ndarray, distractors: np.ndarray, sizes: Sequence[int], use_faiss: bool | None = None
) -> np.ndarray:
    """``(len(sizes), P)``: for each size ``n``, each probe's highest cosine over the first ``n`` distractors."""
    q = np.asarray(probes, np.float32)
    db = np.asarray(distractors, np.float32)
    faiss = None
    if use_faiss is not False:
        try:
            import faiss  # type: ignore[import-not-found]
        except ImportError:
            if use_faiss:
                from arcface.errors import require

                faiss = require("faiss", "gallery")
    out = np.empty((len(sizes), len(q)), np.float32)
    best = np.full(len(q), -np.inf, np.float32)
    done = 0
    for i, n in enumerate(sizes):
        if n < done:
            raise InputError("distractor sizes must be increasing")
        seg = db[done:n]
        if len(seg):
            m = _max_inner_faiss(faiss, q, seg) if faiss is not None else _max_inner_numpy(q, seg)
            np.maximum(best, m, out=best)
        out[i] = best
        done = n
    return out


def megaface_rank1(
    probe_emb: np.ndarray,
    probe_labels: Sequence[Any],
    distractor_emb: np.ndarray,
    sizes: Sequence[int] = DISTRACTOR_SIZES,
    use_faiss: bool | None = None,
) -> dict[str, Any]:
    """Rank-1 identification rate per distractor count (see the module docstring).

    Args:
        probe_emb: ``(P, D)`` unit embeddings of the probe set (e.g. FaceScrub), labels per row.
        distractor_emb: ``(M, D)`` unit embeddings of the distractors, in their fixed order.
    Returns:
        ``{"rank1": {"10": rate, ...}, "n_searches": int, "skipped_sizes": [...]}``.
    """
    p = np.asarray(probe_emb, np.float32)
    labels = np.asarray(probe_labels)
    if len(p) != len(labels):
        raise InputError(f"{len(p)} probe embeddings for {len(labels)} labels")
    used = sorted({int(n) for n in sizes if 0 < n <= len(distractor_emb)})
    skipped = sorted({int(n) for n in sizes if n > len(distractor_emb)})
    if not used:
        raise InputError(f"only {len(distractor_emb)} distractors: no requested size is reachable")
    maxima = distractor_maxima(p, distractor_emb, used, use_faiss)
    sim = p @ p.T
    mate = (labels[:, None] == labels[None, :]) & ~np.eye(len(p), dtype=bool)
    n_searches = int(mate.sum())
    if n_searches == 0:
        raise InputError("no identity has two probe images")
    rank1 = {}
    for n, mx in zip(used, maxima, strict=True):
        rank1[str(n)] = float(np.sum(mate & (sim > mx[:, None])) / n_searches)
    return {"rank1": rank1, "n_searches": n_searches, "n_distractors": len(distractor_emb), "skipped_sizes": skipped}


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    return sorted(q for q in root.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())


def embed_folder_images(
    paths: Sequence[Path],
    embedder: Any,
    detector: Any | None = None,
    batch_size: int = 64,
    flip: bool = True,
    desc: str = "images",
    show_progress: bool = False,
    stats: Any | None = None,
) -> np.ndarray:
    """Embeddings of image files: through ``detector`` + alignment, or (``detector=None``) taken as
    already aligned crops and resized to the embedder input."""
    from arcface.eval.faces import iter_face_crops
    from arcface.imageio import load_image

    size = input_size(embedder)
    if detector is None:
        crops = (fit_crop(load_image(q), size) for q in paths)
    else:
        crops = iter_face_crops(paths, detector, size=size[0], stats=stats)
    return embed_crops(embedder, crops, batch_size, flip, total=len(paths), desc=desc, show_progress=show_progress)


def evaluate_megaface(
    probe_dir: str | os.PathLike[str],
    distractor_dir: str | os.PathLike[str],
    embedder: Any,
    detector: Any | None = None,
    sizes: Sequence[int] = DISTRACTOR_SIZES,
    batch_size: int = 64,
    flip: bool = True,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Rank-1 at 10..10^6 distractors from folders: ``probe_dir/<identity>/*`` and ``distractor_dir/**``."""
    from arcface.eval.faces import CropStats

    probe_paths = list_images(probe_dir)
    if not probe_paths:
        raise InputError(f"{probe_dir}: no probe images")
    labels = [q.relative_to(probe_dir).parts[0] for q in probe_paths]
    dis_paths = list_images(distractor_dir)
    if not dis_paths:
        raise InputError(f"{distractor_dir}: no distractor images")
    stats = CropStats()
    pe = embed_folder_images(probe_paths, embedder, detector, batch_size, flip, "probes", show_progress, stats)
    de = embed_folder_images(dis_paths, embedder, detector, batch_size, flip, "distractors", show_progress, stats)
    res = megaface_rank1(pe, labels, de, sizes)
    res.update({"dataset": "megaface", "n_probes": len(probe_paths), **stats.to_dict()})
    return res
