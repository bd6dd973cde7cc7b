"""YouTube Faces (YTF) video-level verification with frame pooling.

Layout: ``<root>/<name>/<video_no>/*.jpg`` (``frame_images_DB`` or ``aligned_images_DB``), or video files
``<root>/<name>/<video_no>.mp4`` (``.avi``, ``.mkv``, ``.mov``, ``.webm``: decoded by FFmpeg), and the
``splits.txt`` file: a header line, then comma-separated lines
``split, name/video_no, name/video_no, <common-metadata flag>, is_same`` (5000 pairs in 10 splits; only the
first three fields and the last one are used). The splits are the 10 folds.

A video's feature is the mean of its frames' flip-TTA embeddings, L2-normalised. Frames go through the
detector + alignment (nearest-to-centre face, centre-crop fallback) or, with ``detector=None``, are taken
as face crops and resized. ``max_frames`` evenly spaced frames per video bound the cost.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcface.embed.base import l2_normalize
from arcface.errors import InputError
from arcface.eval.faces import CropStats
from arcface.eval.megaface import IMAGE_SUFFIXES, embed_folder_images
from arcface.eval.metrics import DEFAULT_FARS, VerificationSummary, summarize_verification


@dataclass
class YtfSplits:
    videos_a: list[str]
    videos_b: list[str]
    issame: np.ndarray
    folds: np.ndarray


def parse_splits(path: str | os.PathLike[str]) -> YtfSplits:
    """Read ``splits.txt`` (see the module docstring); lines whose first field is not a number are skipped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{p}: cannot read splits file ({exc.strerror or exc})") from exc
    a, b, same, folds = [], [], [], []
    for i, line in enumerate(text.splitlines(), 1):
        fields = [f.strip() for f in line.split(",")]
        if not fields[0].isdigit():
            continue
        if len(fields) < 4:
            raise InputError(f"{p}: line {i}: expected 'split, video1, video2, ..., is_same'")
        try:
            folds.append(int(fields[0]))
            same.append(int(float(fields[-1])) == 1)
        except ValueError:
            raise InputError(f"{p}: line {i}: split and is_same must be numbers") from None
        a.append(fields[1])
        b.append(fields[2])
    if not a:
        raise InputError(f"{p}: no pairs found")
    return YtfSplits(a, b, np.array(same, bool), np.array(folds))


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def _video_file(root: Path, video: str) -> Path | None:
    p = root / video
    if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
        return p
    return next((p.with_name(p.name + s) for s in VIDEO_SUFFIXES if p.with_name(p.name + s).is_file()), None)


def video_file_frames(path: Path, max_frames: int) -> list[np.ndarray]:
    """Up to ``max_frames`` evenly spaced decoded frames (uint8 RGB) of a video file."""
    from arcface.video import open_source

    decoded = [f.image for f in open_source(path)]
    if not decoded:
        raise InputError(f"{path}: no frame could be decoded")
    return _evenly_spaced(decoded, max_frames)


def _evenly_spaced(items: list, max_frames: int) -> list:
    """At most ``max_frames`` items, evenly spaced, first and last included (all when 0)."""
    if max_frames and len(items) > max_frames:
        idx = np.linspace(0, len(items) - 1, max_frames).round().astype(int)
        items = [items[i] for i in idx]
    return items


def video_frames(root: str | os.PathLike[str], video: str, max_frames: int) -> list[Path] | list[np.ndarray]:
    """Up to ``max_frames`` evenly spaced frames of ``<root>/<video>``: frame files of a folder (sorted by name),
    or decoded frames of a video file ``<root>/<video>[.mp4|.avi|...]``."""
    d = Path(root) / video
    if not d.is_dir():
        f = _video_file(Path(root), video)
        if f is not None:
            return video_file_frames(f, max_frames)
    frames = sorted(q for q in d.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []
    if not frames:
        raise InputError(f"{d}: no frames found (neither a frame folder nor a video file)")
    return _evenly_spaced(frames, max_frames)


def pool_frames(frame_emb: np.ndarray, owner: np.ndarray, n_videos: int) -> np.ndarray:
    """Mean of each video's frame embeddings, L2-normalised: ``(n_videos, D)``."""
    sums = np.zeros((n_videos, frame_emb.shape[1]), np.float64)
    np.add.at(sums, owner, frame_emb)
    return l2_normalize(sums)  # mean and sum differ only by a positive factor


def evaluate_ytf(
    root: str | os.PathLike[str],
    splits_file: str | os.PathLike[str],
    embedder: Any,
    detector: Any | None = None,
    max_frames: int = 30,
    batch_size: int = 64,
    flip: bool = True,
    fars: Sequence[float] = DEFAULT_FARS,
    show_progress: bool = False,
) -> VerificationSummary:
    """10-fold video verification accuracy (protocol splits), TAR@FAR and EER on YTF."""
    sp = parse_splits(splits_file)
    videos = sorted(set(sp.videos_a) | set(sp.videos_b))
    vid_index = {v: i for i, v in enumerate(videos)}
    paths, owner = [], []
    for v in videos:
        fr = video_frames(root, v, max_frames)
        paths += fr
        owner += [vid_index[v]] * len(fr)
    stats = CropStats()
    emb = embed_folder_images(paths, embedder, detector, batch_size, flip, "ytf frames", show_progress, stats)
    feats = pool_frames(emb, np.array(owner), len(videos))
    ia = np.array([vid_index[v] for v in sp.videos_a])
    ib = np.array([vid_index[v] for v in sp.videos_b])
    scores = np.sum(feats[ia] * feats[ib], axis=1)
    summary = summarize_verification(scores, sp.issame, fars=fars, folds=sp.folds)
    summary.extra.update(
        {"dataset": "ytf", "n_videos": len(videos), "n_frames": len(paths), "flip": flip, **stats.to_dict()}
    )
    return summary
