"""``arcface data align``: turn a folder of raw photos (one sub-folder per identity) into training crops.

Each photo goes through the same detector and the same alignment as inference (the 5 landmarks warped onto
the ArcFace template, :func:`arcface.align.align_faces`), so a model trained on the crops sees what it will be
given later. One face is picked per photo (:func:`arcface.face.select_face`); a photo with no face, or with a
second face nearly as large as the picked one (``ambiguous_ratio``), is skipped and reported, never guessed.

Output: ``OUT/<identity>/<photo path with / as __>.png`` (112x112 RGB, lossless) and ``OUT/manifest.jsonl``,
one JSON line per photo: ``source`` (path relative to the raw root), ``identity``, ``status`` (``ok``,
``no_face``, ``ambiguous``, ``unreadable``), and for ``ok`` the ``crop`` path, the face's ``box``
``[x1, y1, x2, y2]``, detection ``score``, the 5 ``landmarks`` ``[[x, y], ...]`` in pixels of the photo and the
number of ``faces`` found. Re-running the same command resumes: photos already in the manifest (with their
crop on disk) are not redone. Needs no torch.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.face import SELECT_RULES, Face, select_face
from arcface.imageio import encode_image, identity_folders, load_image

MANIFEST = "manifest.jsonl"
STATUSES = ("ok", "no_face", "ambiguous", "unreadable")


@dataclass
class AlignReport:
    """What one ``align_folder`` call did.

    Attributes:
        counts: photos per status (``ok``, ``no_face``, ``ambiguous``, ``unreadable``), this run and earlier
            runs together.
        resumed: photos found already done in the manifest and skipped.
        identities: identity folders holding at least one crop.
        skipped: ``(source, status)`` of every photo without a crop.
        manifest: the manifest file.
    """

    counts: dict[str, int]
    resumed: int
    identities: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    manifest: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "resumed": self.resumed,
            "identities": self.identities,
            "skipped": [{"source": s, "status": st} for s, st in self.skipped],
            "manifest": str(self.manifest) if self.manifest else None,
        }


def raw_photos(root: Path) -> list[tuple[str, str]]:
    """``(identity, path relative to root)`` of every image under ``root/<identity>/`` (sorted)."""
    if not root.is_dir():
        raise InputError(f"{root}: raw photo folder not found")
    out = [(ident, f.relative_to(root).as_posix()) for ident, photos in identity_folders(root).items() for f in photos]
    if not out:
        raise InputError(f"{root}: no images in identity sub-folders (expected ROOT/<identity>/<photo>)")
    return out


def crop_name(source: str) -> str:
    """The crop's file name for a photo at ``source`` (``identity/sub/x.jpg`` -> ``sub__x.png``)."""
    rest = source.split("/", 1)[1]
    return Path(rest.replace("/", "__")).with_suffix(".png").name


def _read_manifest(path: Path, out: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash: that photo is redone
        if rec.get("status") == "ok" and not (out / rec.get("crop", "")).is_file():
            continue
        done[rec["source"]] = rec
    return done


def _write_crop(path: Path, crop_rgb: np.ndarray) -> None:
    data = encode_image(crop_rgb, ".png", name=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _decide(faces: list[Face], rule: str, size: tuple[int, int], ambiguous_ratio: float) -> tuple[str, Face | None]:
    if not faces:
        return "no_face", None
    face = select_face(faces, rule, size)
    others = [f.area for f in faces if f is not face]
    if ambiguous_ratio > 0 and others and max(others) >= ambiguous_ratio * face.area:
        return "ambiguous", None
    return "ok", face


def align_folder(
    raw: str | os.PathLike,
    out: str | os.PathLike,
    analyzer: Any,
    select: str = "largest",
    ambiguous_ratio: float = 0.5,
    progress: bool = True,
    chunk: int = 16,
) -> AlignReport:
    """Detect, pick and align one face per photo of ``raw/<identity>/...`` into ``out/<identity>/*.png``.

    Args:
        raw: the raw photo root (one sub-folder per identity; photos may sit in deeper folders).
        out: the crop root (created); ``out/manifest.jsonl`` records every photo (see the module docstring).
        analyzer: a :class:`arcface.FaceAnalyzer` (its detector, its crop size).
        select: which face of a photo: ``largest``, ``center`` or ``center_largest``.
        ambiguous_ratio: skip a photo as ``ambiguous`` when another face's box area is at least this fraction
            of the picked face's (0 disables the check).
        progress: a progress bar on stderr.
        chunk: photos detected per batch.
    Returns:
        An :class:`AlignReport`.
    """
    if select not in SELECT_RULES:
        raise InputError(f"--select must be one of {', '.join(SELECT_RULES)}, got {select!r}")
    raw, out = Path(raw), Path(out)
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise InputError(f"{out}: the output folder must not be inside the raw folder {raw}")
    photos = raw_photos(raw)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    done = _read_manifest(manifest, out)
    todo = [(ident, src) for ident, src in photos if src not in done]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(photos), initial=len(photos) - len(todo), unit="photo", desc="align")
    with manifest.open("a", encoding="utf-8") as log:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            images: list[np.ndarray | None] = []
            for _, src in part:
                try:
                    images.append(load_image(raw / src))
                except InputError:
                    images.append(None)
            readable = [im for im in images if im is not None]
            found = iter(analyzer.analyze_many(readable, with_crops=True, embed=False) if readable else [])
            for (ident, src), img in zip(part, images, strict=True):
                rec: dict[str, Any] = {"source": src, "identity": ident}
                if img is None:
                    rec["status"] = "unreadable"
                else:
                    faces = next(found)
                    status, face = _decide(faces, select, (img.shape[1], img.shape[0]), ambiguous_ratio)
                    rec["status"] = status
                    rec["faces"] = len(faces)
                    if face is not None:
                        rel = f"{ident}/{crop_name(src)}"
                        _write_crop(out / rel, face.crop)
                        rec.update(face.to_dict())
                        rec["crop"] = rel
                        rec["box"] = rec.pop("bbox")
                        rec["landmarks"] = rec.pop("kps")
                log.write(json.dumps(rec) + "\n")
                log.flush()
                done[src] = rec
            if bar is not None:
                bar.update(len(part))
    if bar is not None:
        bar.close()
    return _report(done, len(photos) - len(todo), manifest)


def _report(done: dict[str, dict[str, Any]], resumed: int, manifest: Path) -> AlignReport:
    counts = Counter(rec["status"] for rec in done.values())
    return AlignReport(
        counts={s: int(counts.get(s, 0)) for s in STATUSES},
        resumed=resumed,
        identities=len({rec["identity"] for rec in done.values() if rec["status"] == "ok"}),
        skipped=sorted((src, rec["status"]) for src, rec in done.items() if rec["status"] != "ok"),
        manifest=manifest,
    )


def read_manifest(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``out/manifest.jsonl`` (the last one per photo)."""
    return list(_read_manifest(Path(out) / MANIFEST, Path(out)).values())
