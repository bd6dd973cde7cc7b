"""Galleries from folders: one identity per sub-folder, kept in step with the folder.

``ROOT/<identity>/<photos>`` (photos may sit deeper) is the layout of deepface's ``db_path`` and of
face_recognition's ``known/`` folder. :func:`sync_folders` enrols each sub-folder as the identity named after it:

* a photo must show exactly one face; a group photo enrols nothing (and is reported) unless ``select`` names
  the rule that picks one of its faces (``"largest"``, ``"center"``, ``"center_largest"``; ``largest=True`` is
  ``select="largest"``);
* photos are recognised by the SHA-256 of their bytes: a photo already enrolled (under any identity, or twice in
  a folder) is skipped as a duplicate, so re-running only embeds new photos;
* with ``prune=True`` (the cache of ``arcface find``) an identity whose folder lost photos is re-enrolled from
  what is left, and identities whose folder is gone are removed.

The digests live in each identity's metadata (``photo_sha256``; photos that gave no usable face in
``skipped_sha256``, so they are not re-analysed on every run; ``select`` looks at them again).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.face import SELECT_RULES, select_face
from arcface.imageio import IMAGE_EXTENSIONS, identity_folders
from arcface.io_utils import sha256_file

ENROLLED = "photo_sha256"
SKIPPED = "skipped_sha256"


@dataclass
class FolderSync:
    """What :func:`sync_folders` did.

    Attributes:
        enrolled: identity -> photos newly enrolled in this run.
        unchanged: identities already up to date.
        removed: identities removed (``prune``).
        skipped: ``(photo, reason)`` for photos not enrolled: ``duplicate of PATH``, ``no face``,
            ``N faces (group photo; use --largest or --select)``, ``unreadable: ...``, ``not in an identity folder``.
        fallback: ``(photo, stage)`` for photos enrolled with a face that only a last-resort stage found
            (``padded``, ``low_threshold``, ``center_crop``): worth a look, such a stage also finds the odd false face.
    """

    enrolled: dict[str, int] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    fallback: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [{"photo": p, "reason": r} for p, r in self.skipped],
            "skipped_by_reason": dict(Counter(r.split(" (")[0].split(":")[0] for _, r in self.skipped)),
            "found_by_fallback": [{"photo": p, "stage": st} for p, st in self.fallback],
        }


def sync_folders(
    gallery: Any,
    analyzer: Any,
    root: str | os.PathLike,
    *,
    largest: bool = False,
    prune: bool = False,
    progress: bool = False,
    select: str | None = None,
) -> FolderSync:
    """Enrol (or update) one identity per sub-folder of ``root`` (see the module docstring).

    Args:
        gallery: an open, writable :class:`arcface.gallery.Gallery`.
        analyzer: the :class:`arcface.FaceAnalyzer` whose embeddings the gallery holds.
        root: the folder of identity sub-folders.
        largest: take the largest face of a group photo instead of skipping it (``select="largest"``).
        select: take the face this rule of :func:`arcface.face.select_face` picks from a group photo.
        prune: re-enrol identities whose folder lost photos; remove identities without a folder.
        progress: a progress bar while embedding.
    """
    from arcface.gallery.contract import EmbeddingContract

    if largest and select is None:
        select = "largest"
    if select is not None and select not in SELECT_RULES:
        raise InputError(f"face selection must be one of {', '.join(SELECT_RULES)}, got {select!r}")
    root = Path(root)
    folders = identity_folders(root)
    report = FolderSync()
    report.skipped += [(str(p), "not in an identity folder") for p in sorted(root.iterdir()) if _is_photo(p)]
    known: dict[str, str] = {}  # digest -> where it is enrolled
    for name in list(gallery.names):
        meta = gallery.metadata(name)
        for d in meta.get(ENROLLED, []):
            known[d] = f"identity {name!r}"
    plans: list[tuple[str, list[tuple[Path, str]], bool, list[str]]] = []
    for name, photos in folders.items():
        meta = gallery.metadata(name) if name in gallery else {}
        stored, skipped_before = set(meta.get(ENROLLED, [])), set(meta.get(SKIPPED, []))
        digests: list[tuple[Path, str]] = []
        seen_here: dict[str, Path] = {}
        for p in photos:
            d = sha256_file(p)
            if d in seen_here:
                report.skipped.append((str(p), f"duplicate of {seen_here[d]}"))
                continue
            seen_here[d] = p
            digests.append((p, d))
        current = {d for _, d in digests}
        rebuild = prune and bool(stored - current)
        todo = []
        for p, d in digests:
            if not rebuild and (d in stored or (d in skipped_before and select is None)):
                continue
            if d in known and not (rebuild and d in stored):
                report.skipped.append((str(p), f"duplicate of a photo enrolled as {known[d]}"))
                continue
            todo.append((p, d))
            known[d] = f"identity {name!r}"
        if not todo and not rebuild:
            report.unchanged.append(name)
            continue
        plans.append((name, todo, rebuild, [] if rebuild else sorted(stored)))
    files = [p for _, todo, _, _ in plans for p, _ in todo]
    batch = analyzer.analyze_many(files, on_error="skip", progress=progress) if files else []
    errors = {str(files[e.index]): f"unreadable: {e.reason}" for e in getattr(batch, "errors", [])}
    faces_per_photo = iter(batch)
    contract = EmbeddingContract.from_analyzer(analyzer)
    for name, todo, rebuild, kept in plans:
        rows, ok, bad = [], list(kept), []
        for p, d in todo:
            faces = next(faces_per_photo)
            reason = None
            if not faces:
                reason = errors.get(str(p), "no face")
            elif len(faces) > 1 and select is None:
                reason = f"{len(faces)} faces (group photo; use --largest or --select)"
            if reason is not None:
                report.skipped.append((str(p), reason))
                bad.append(d)
                continue
            face = select_face(faces, select or "largest")
            if face.found_by_fallback:
                report.fallback.append((str(p), face.path))
            rows.append(face.embedding)
            ok.append(d)
        meta = gallery.metadata(name) if name in gallery else {}
        skipped = sorted(set(bad) | (set() if rebuild else set(meta.get(SKIPPED, []))))
        if rows:
            gallery.enroll(
                name,
                np.stack(rows),
                {ENROLLED: sorted(set(ok)), SKIPPED: skipped},
                replace=rebuild,
                contract=contract,
            )
            report.enrolled[name] = len(rows)
        elif rebuild or name in gallery:
            if rebuild and name in gallery:
                gallery.remove(name)
                report.removed.append(name)
            elif name in gallery:
                gallery.set_metadata(name, {**meta, SKIPPED: skipped})
                report.unchanged.append(name)
    if prune:
        for name in list(gallery.names):
            if name not in folders:
                gallery.remove(name)
                report.removed.append(name)
    return report


def _is_photo(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
