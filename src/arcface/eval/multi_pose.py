"""Multi-pose face sets laid out like CMU Face Images, and frontal-versus-turned pairs from them.

CMU Face Images (T. Mitchell, *Machine Learning*, McGraw Hill 1997; UCI KDD archive, donated 1999) holds 20 people
photographed looking straight at the camera, turned to their left and right (about 60-90 degrees) and up, each
with four expressions and with or without sunglasses: 640 greyscale photos of 128x120 pixels, 16 of which the
source itself marks ``.bad`` (camera glitches), plus copies at half and quarter size. Its terms: free of charge for
any educational purpose, with attribution. It is not shipped here; point :func:`load_multi_pose` (and
``benchmarks/bench_hard_photos.py --cmu``, and the tests through ``ARCFACE_CMU_FACES``) at its ``faces`` folder.

Layout: ``<root>/<person>/<person>_<pose>_<expression>_<eyes>[_<scale>].pgm`` with ``<scale>`` 2 or 4 for the
smaller copies and absent for full size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arcface.io_utils import sha256_file

POSES: tuple[str, ...] = ("straight", "left", "right", "up")
EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
EYES: tuple[str, ...] = ("open", "sunglasses")
SCALES: tuple[int, ...] = (1, 2, 4)

#: :func:`manifest_digest` of the copy measured in the README: the 624 full-size photos of the ``faces`` folder
#: under ``Lab1-Artificial Neural Network/Face Recognition/`` in github.com/qiaofengmarco/Artificial-Intelligence,
#: commit 77e9bc69c80ceaafc94f7141fcae8286add4ea17 (a course repository holding the UCI set's files: 20
#: people, 624 full-size photos, the 16 ``.bad`` ones absent, as ASCII ``P2`` greymaps).
CMU_FACES_SHA256 = "0a40e4b3aa274dcf25f6684f5458d572d555621477bf502e4feef1cbc74b7f13"


@dataclass(frozen=True)
class PosePhoto:
    """One photo of a multi-pose set: its file, who, which pose (:data:`POSES`), expression, eyes and scale
    (1: full size, 2: half, 4: quarter)."""

    path: Path
    identity: str
    pose: str
    expression: str
    eyes: str
    scale: int


def parse_name(path: Path) -> PosePhoto:
    """The :class:`PosePhoto` a file name describes. Raises ValueError naming the file when the name does not
    follow the layout or its person is not the folder's."""
    parts = path.stem.split("_")
    scale = 1
    if len(parts) == 5 and parts[4].isdigit():
        scale = int(parts.pop())
    if (
        len(parts) != 4
        or parts[1] not in POSES
        or parts[2] not in EXPRESSIONS
        or parts[3] not in EYES
        or scale not in SCALES
        or parts[0] != path.parent.name
    ):
        raise ValueError(
            f"{path}: not a multi-pose photo name (<person>_<{'|'.join(POSES)}>_<expression>_<eyes>[_2|_4].pgm, "
            f"in the folder named for its person)"
        )
    return PosePhoto(path, parts[0], parts[1], parts[2], parts[3], scale)


def load_multi_pose(root: str | Path, scale: int = 1) -> list[PosePhoto]:
    """The photos of one ``scale`` under ``root`` (one folder per person), sorted by path; files the source marks
    ``.bad`` and files other than ``.pgm`` are left out. Raises FileNotFoundError for a missing folder and
    ValueError for a misnamed photo or a folder without any photo of that scale."""
    root = Path(root)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    if not root.is_dir():
        raise FileNotFoundError(f"multi-pose set folder not found: {root}")
    photos = [parse_name(p) for p in sorted(root.glob("*/*.pgm"))]
    photos = [p for p in photos if p.scale == scale]
    if not photos:
        raise ValueError(f"{root}: no <person>/<person>_<pose>_..pgm photos of scale {scale}")
    return photos


def manifest_digest(photos: Sequence[PosePhoto], root: str | Path) -> str:
    """SHA-256 (hex) of the lines ``<path relative to root>\\t<file SHA-256>`` of ``photos``, sorted: names the
    exact files a measurement used."""
    root = Path(root)
    lines = sorted(f"{p.path.relative_to(root).as_posix()}\t{sha256_file(p.path)}\n" for p in photos)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def pose_pairs(photos: Sequence[PosePhoto], a: Iterable[str], b: Iterable[str]) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, of indices into ``photos`` with one photo's pose in ``a`` and the
    other's in ``b`` (both in ``a`` and ``b`` when the two overlap): e.g. ``a={"straight"}``, ``b={"left",
    "right"}`` gives frontal-versus-turned pairs, the protocol of CFP's frontal-profile test."""
    sa, sb = set(a), set(b)
    out = []
    for i, p in enumerate(photos):
        for j in range(i + 1, len(photos)):
            q = photos[j].pose
            if (p.pose in sa and q in sb) or (p.pose in sb and q in sa):
                out.append((i, j))
    return out
