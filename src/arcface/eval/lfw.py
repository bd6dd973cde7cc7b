"""LFW verification from the raw image folders and a pairs file, through detection + alignment.

Layout: ``<root>/<name>/<name>_<NNNN>.jpg`` (4-digit, 1-based image number). Pairs files:

* ``pairs.txt`` (View 2): header ``"10 300"`` then 10 sets, each of 300 genuine lines ``name n1 n2``
  followed by 300 impostor lines ``name1 n1 name2 n2``. The 10 sets are the 10 folds of the protocol.
* ``pairsDevTest.txt`` / ``pairsDevTrain.txt`` (View 1): header ``"500"`` (or ``"1100"``) then that many
  genuine lines followed by as many impostor lines; folds are then assigned round-robin.

Each photo goes through the detector; the face nearest the image centre is aligned (see
:mod:`arcface.eval.faces`). Photos with no detection fall back to a centre crop and are reported.
Scores are cosine similarities of flip-TTA embeddings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.eval.faces import Aligner, CropStats, iter_face_crops
from arcface.eval.metrics import DEFAULT_FARS, VerificationSummary, summarize_verification
from arcface.eval.models import embed_crops, input_size


@dataclass
class LfwPairs:
    """Parsed pairs: ``pairs[i] = (name1, n1, name2, n2)``, labels and protocol folds (or ``None``)."""

    pairs: list[tuple[str, int, str, int]]
    issame: np.ndarray
    folds: np.ndarray | None


def parse_pairs(path: str | os.PathLike[str]) -> LfwPairs:
    """Read an LFW ``pairs.txt`` / ``pairsDevTest.txt`` file (see the module docstring)."""
    p = Path(path)
    try:
        lines = [ln.split() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read pairs file ({exc})") from exc
    if not lines:
        raise InputError(f"{p}: empty pairs file")
    try:
        head = [int(v) for v in lines[0]]
    except ValueError:
        raise InputError(f"{p}: first line must be '<sets> <pairs>' or '<pairs>', got {' '.join(lines[0])!r}") from None
    if len(head) == 2:
        n_sets, per = head
    elif len(head) == 1:
        n_sets, per = 1, head[0]
    else:
        raise InputError(f"{p}: first line must hold one or two integers")
    expected = n_sets * 2 * per
    body = lines[1:]
    if len(body) != expected:
        raise InputError(f"{p}: header announces {expected} pairs, file has {len(body)}")
    pairs: list[tuple[str, int, str, int]] = []
    issame = np.zeros(expected, dtype=bool)
    for i, toks in enumerate(body):
        same_expected = (i % (2 * per)) < per
        try:
            if len(toks) == 3 and same_expected:
                pairs.append((toks[0], int(toks[1]), toks[0], int(toks[2])))
                issame[i] = True
            elif len(toks) == 4 and not same_expected:
                pairs.append((toks[0], int(toks[1]), toks[2], int(toks[3])))
            else:
                kind = "'name n1 n2'" if same_expected else "'name1 n1 name2 n2'"
                raise InputError(f"{p}: line {i + 2}: expected {kind}, got {' '.join(toks)!r}")
        except ValueError:
            raise InputError(f"{p}: line {i + 2}: image numbers must be integers") from None
    folds = np.repeat(np.arange(n_sets), 2 * per) if n_sets > 1 else None
    return LfwPairs(pairs=pairs, issame=issame, folds=folds)


def image_path(root: str | os.PathLike[str], name: str, number: int) -> Path:
    """``<root>/<name>/<name>_<number:04d>.jpg``."""
    return Path(root) / name / f"{name}_{number:04d}.jpg"


def evaluate_lfw(
    root: str | os.PathLike[str],
    pairs_file: str | os.PathLike[str],
    analyzer: Any,
    embedder: Any | None = None,
    aligner: Aligner | None = None,
    batch_size: int = 64,
    flip: bool = True,
    n_folds: int = 10,
    fars: Sequence[float] = DEFAULT_FARS,
    fallback_fraction: float = 0.5,
    show_progress: bool = False,
    select: str = "center",
) -> VerificationSummary:
    """Verification figures on LFW-style folders (10-fold accuracy on the protocol folds, TAR@FAR, EER).

    Args:
        analyzer: provides ``.detector`` (and ``.embedder`` unless ``embedder`` is given).
        aligner: ``(image, kps (N,5,2), size) -> crops``; default :func:`arcface.align.align_faces`.
        select: which face of a photo (a rule of :func:`arcface.face.select_face`; default: nearest the centre).
    The summary's ``extra`` holds ``n_images``, ``n_undetected`` and the first undetected paths.
    """
    lp = parse_pairs(pairs_file)
    paths: dict[Path, int] = {}
    for n1, i1, n2, i2 in lp.pairs:
        for name, num in ((n1, i1), (n2, i2)):
            paths.setdefault(image_path(root, name, num), len(paths))
    missing = [str(q) for q in paths if not q.is_file()]
    if missing:
        raise InputError(f"{len(missing)} LFW images not found under {root}, e.g. {missing[0]}")
    emb_model = embedder if embedder is not None else analyzer.embedder
    size = input_size(emb_model)[0]
    stats = CropStats()
    crops = iter_face_crops(
        list(paths),
        analyzer.detector,
        aligner,
        size=size,
        fallback_fraction=fallback_fraction,
        stats=stats,
        select=select,
    )
    emb = embed_crops(
        emb_model, crops, batch_size=batch_size, flip=flip, total=len(paths), desc="lfw", show_progress=show_progress
    )
    idx_a = np.array([paths[image_path(root, n1, i1)] for n1, i1, _, _ in lp.pairs])
    idx_b = np.array([paths[image_path(root, n2, i2)] for _, _, n2, i2 in lp.pairs])
    scores = np.sum(emb[idx_a] * emb[idx_b], axis=1).astype(np.float64)
    folds = lp.folds if lp.folds is not None else np.arange(len(scores)) % n_folds
    summary = summarize_verification(scores, lp.issame, fars=fars, folds=folds)
    summary.extra.update({"dataset": "lfw", "flip": flip, **stats.to_dict()})
    return summary
