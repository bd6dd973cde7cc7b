"""IJB-B / IJB-C: template-based 1:1 verification (TAR@FAR) and 1:N identification (TPIR@FPIR, rank-k).

Expected layout under ``root`` (the insightface IJB release; ``<t>`` is ``ijbb`` or ``ijbc``)::

    loose_crop/<image_name>                 face photos (loosely cropped)
    meta/<t>_face_tid_mid.txt               "image_name template_id media_id" per face
    meta/<t>_name_5pts_score.txt            "image_name x1 y1 ... x5 y5 det_score" per face
    meta/<t>_template_pair_label.txt        "template_id1 template_id2 label" (1 = same subject)
    meta/<t>_1N_gallery_G1.csv, ..._G2.csv  1:N galleries: header, then TEMPLATE_ID,SUBJECT_ID,...
    meta/<t>_1N_probe_mixed.csv             1:N probes, same columns

Each face is aligned with its provided 5 landmarks (no detection) and embedded (flip-TTA). Template
features follow the usual media pooling: the embeddings of one template are averaged per media (all
frames of a video count once), the media means are summed, and the sum is L2-normalised. Optionally each
face embedding is first multiplied by its detector score. Scores are cosine similarities of templates.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcface.embed.base import l2_normalize
from arcface.errors import InputError
from arcface.eval.faces import Aligner, default_aligner
from arcface.eval.metrics import VerificationSummary, cmc, summarize_verification, tpir_at_fpir
from arcface.eval.models import embed_crops, input_size
from arcface.imageio import load_image

IJB_FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class IjbMeta:
    """Face-level and pair-level metadata of one IJB protocol."""

    image_names: list[str]
    template_ids: np.ndarray  # (N,) int64
    media_ids: np.ndarray  # (N,) int64
    landmarks: np.ndarray  # (N, 5, 2) float32, pixels of the loose crop
    det_scores: np.ndarray  # (N,) float32
    pairs: np.ndarray  # (P, 2) int64 template ids
    labels: np.ndarray  # (P,) bool


def _prefix(target: str) -> str:
    t = target.lower()
    if t not in ("ijbb", "ijbc"):
        raise InputError(f"IJB target must be 'IJBB' or 'IJBC', got {target!r}")
    return t


def _rows(path: Path, min_cols: int) -> list[list[str]]:
    try:
        rows = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise InputError(f"{path}: cannot read IJB meta file ({exc.strerror or exc})") from exc
    for i, r in enumerate(rows):
        if len(r) < min_cols:
            raise InputError(f"{path}: line {i + 1}: expected at least {min_cols} fields, got {len(r)}")
    return rows


def load_meta(root: str | os.PathLike[str], target: str = "IJBC") -> IjbMeta:
    """Read the three 1:1 meta files of ``target`` under ``root/meta``."""
    t = _prefix(target)
    meta = Path(root) / "meta"
    faces = _rows(meta / f"{t}_face_tid_mid.txt", 3)
    pts = _rows(meta / f"{t}_name_5pts_score.txt", 12)
    pairs = _rows(meta / f"{t}_template_pair_label.txt", 3)
    try:
        lm = {r[0]: (np.array(r[1:11], np.float32).reshape(5, 2), float(r[11])) for r in pts}
        names = [r[0] for r in faces]
        tids = np.array([int(r[1]) for r in faces], np.int64)
        mids = np.array([int(r[2]) for r in faces], np.int64)
        pair_arr = np.array([[int(r[0]), int(r[1])] for r in pairs], np.int64).reshape(-1, 2)
        labels = np.array([int(r[2]) for r in pairs]) == 1
    except ValueError as exc:
        raise InputError(f"{meta}: malformed number in IJB meta files ({exc})") from exc
    missing = [n for n in names if n not in lm]
    if missing:
        raise InputError(f"{meta}: {len(missing)} faces have no landmarks, e.g. {missing[0]}")
    return IjbMeta(
        image_names=names,
        template_ids=tids,
        media_ids=mids,
        landmarks=np.stack([lm[n][0] for n in names]) if names else np.zeros((0, 5, 2), np.float32),
        det_scores=np.array([lm[n][1] for n in names], np.float32),
        pairs=pair_arr,
        labels=labels,
    )


def _aligned_crops(root: Path, meta: IjbMeta, aligner: Aligner, size: int) -> Iterator[np.ndarray]:
    for name, kps in zip(meta.image_names, meta.landmarks, strict=True):
        yield aligner(load_image(root / "loose_crop" / name), kps[None], size)[0]


def face_embeddings(
    root: str | os.PathLike[str],
    meta: IjbMeta,
    embedder: Any,
    aligner: Aligner | None = None,
    batch_size: int = 64,
    flip: bool = True,
    show_progress: bool = False,
) -> np.ndarray:
    """Unit embeddings ``(N, D)`` of every face, aligned with its provided landmarks."""
    size = input_size(embedder)[0]
    crops = _aligned_crops(Path(root), meta, aligner or default_aligner(), size)
    return embed_crops(
        embedder, crops, batch_size, flip, total=len(meta.image_names), desc="ijb", show_progress=show_progress
    )


def template_features(
    face_emb: np.ndarray,
    template_ids: np.ndarray,
    media_ids: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Media-pooled template features.

    For each template: mean of its face embeddings per media id, sum over media, L2-normalise.
    ``weights`` (e.g. detector scores) multiply each face embedding before pooling.

    Returns:
        ``(templates, features)``: sorted unique template ids ``(T,)`` and unit features ``(T, D)``.
    """
    e = np.asarray(face_emb, dtype=np.float64)
    if weights is not None:
        e = e * np.asarray(weights, dtype=np.float64)[:, None]
    tids = np.asarray(template_ids)
    mids = np.asarray(media_ids)
    if not (len(e) == len(tids) == len(mids)):
        raise InputError(f"{len(e)} embeddings for {len(tids)} template ids and {len(mids)} media ids")
    # group faces by (template, media); mean within, then sum the means per template
    keys = np.stack([tids, mids], axis=1)
    uniq_tm, inv_tm = np.unique(keys, axis=0, return_inverse=True)
    inv_tm = inv_tm.ravel()
    counts = np.bincount(inv_tm, minlength=len(uniq_tm)).astype(np.float64)
    media_sum = np.zeros((len(uniq_tm), e.shape[1]))
    np.add.at(media_sum, inv_tm, e)
    media_mean = media_sum / counts[:, None]
    templates, inv_t = np.unique(uniq_tm[:, 0], return_inverse=True)
    feats = np.zeros((len(templates), e.shape[1]))
    np.add.at(feats, inv_t.ravel(), media_mean)
    return templates, l2_normalize(feats)


def _lookup(templates: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    pos = np.searchsorted(templates, ids)
    pos = np.clip(pos, 0, len(templates) - 1)
    bad = templates[pos] != ids
    if bad.any():
        raise InputError(f"{int(bad.sum())} {what} template ids have no faces, e.g. {int(ids[bad][0])}")
    return pos


def template_pair_scores(templates: np.ndarray, feats: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine score of each template pair ``(t1, t2)``."""
    a = _lookup(templates, pairs[:, 0], "pair")
    b = _lookup(templates, pairs[:, 1], "pair")
    out = np.empty(len(pairs), np.float64)
    step = 1 << 16
    for s in range(0, len(pairs), step):
        out[s : s + step] = np.sum(feats[a[s : s + step]] * feats[b[s : s + step]], axis=1)
    return out


def verify_11(
    meta: IjbMeta, face_emb: np.ndarray, use_detector_score: bool = False, fars: Sequence[float] = IJB_FARS
) -> VerificationSummary:
    """1:1 template verification figures from precomputed face embeddings."""
    w = meta.det_scores if use_detector_score else None
    templates, feats = template_features(face_emb, meta.template_ids, meta.media_ids, w)
    scores = template_pair_scores(templates, feats, meta.pairs)
    summary = summarize_verification(scores, meta.labels, fars=fars, n_folds=None)
    summary.extra.update({"n_templates": int(len(templates)), "detector_score_weighting": use_detector_score})
    return summary


def read_1n_list(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(template_ids, subject_ids)`` of a 1:N gallery/probe CSV (header row, id columns first)."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise InputError(f"{p}: cannot read 1:N list ({exc.strerror or exc})") from exc
    seen: dict[int, int] = {}
    for i, r in enumerate(rows[1:], start=2):
        if not r:
            continue
        try:
            tid, sid = int(r[0]), int(r[1])
        except (ValueError, IndexError):
            raise InputError(f"{p}: line {i}: expected TEMPLATE_ID,SUBJECT_ID,...") from None
        if seen.setdefault(tid, sid) != sid:
            raise InputError(f"{p}: template {tid} listed with two subjects")
    return np.array(list(seen), np.int64), np.array(list(seen.values()), np.int64)


def identify_1n(
    templates: np.ndarray,
    feats: np.ndarray,
    gallery: tuple[np.ndarray, np.ndarray],
    probes: tuple[np.ndarray, np.ndarray],
    fpirs: Sequence[float] = (1e-2, 1e-1),
    ranks: Sequence[int] = (1, 5, 10),
) -> dict[str, Any]:
    """Closed-set CMC (mated probes) and open-set TPIR@FPIR of probe templates against one gallery."""
    g_pos = _lookup(templates, gallery[0], "gallery")
    p_pos = _lookup(templates, probes[0], "probe")
    sim = feats[p_pos] @ feats[g_pos].T
    mated = np.isin(probes[1], gallery[1])
    out: dict[str, Any] = {
        "n_gallery": int(len(g_pos)),
        "n_probes": int(len(p_pos)),
        "n_mated_probes": int(mated.sum()),
        "cmc": {f"rank{k}": v for k, v in cmc(sim, probes[1], gallery[1], ranks).items()},
    }
    if mated.any() and not mated.all():
        out["tpir_at_fpir"] = tpir_at_fpir(sim, probes[1], gallery[1], fpirs)
    return out


def evaluate_ijb(
    root: str | os.PathLike[str],
    embedder: Any,
    target: str = "IJBC",
    aligner: Aligner | None = None,
    batch_size: int = 64,
    flip: bool = True,
    use_detector_score: bool = False,
    fars: Sequence[float] = IJB_FARS,
    one_to_n: bool = True,
    show_progress: bool = False,
) -> tuple[VerificationSummary, dict[str, Any] | None]:
    """1:1 verification summary and (when the 1:N lists exist) 1:N results per gallery (G1, G2)."""
    meta = load_meta(root, target)
    emb = face_embeddings(root, meta, embedder, aligner, batch_size, flip, show_progress)
    summary = verify_11(meta, emb, use_detector_score, fars)
    summary.extra.update({"dataset": target.upper(), "n_faces": len(meta.image_names), "flip": flip})
    ident = None
    t = _prefix(target)
    mdir = Path(root) / "meta"
    probe_file = mdir / f"{t}_1N_probe_mixed.csv"
    galleries = [g for g in ("G1", "G2") if (mdir / f"{t}_1N_gallery_{g}.csv").is_file()]
    if one_to_n and probe_file.is_file() and galleries:
        w = meta.det_scores if use_detector_score else None
        templates, feats = template_features(emb, meta.template_ids, meta.media_ids, w)
        probes = read_1n_list(probe_file)
        ident = {}
        for g in galleries:
            gal = read_1n_list(mdir / f"{t}_1N_gallery_{g}.csv")
            keep = np.isin(probes[0], templates)
            ident[g] = identify_1n(templates, feats, gal, (probes[0][keep], probes[1][keep]))
    return summary, ident
