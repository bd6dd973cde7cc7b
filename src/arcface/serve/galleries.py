"""Named galleries of the HTTP service: one directory per gallery under a root folder.

Each gallery is an :class:`arcface.gallery.Gallery` opened once and shared by all requests. Writes
to one gallery (enrol, remove, rename, delete) are serialised by a per-gallery lock held for the whole
operation, on top of the gallery's own mutex and file lock, so concurrent requests never lose a write
and a gallery cannot be deleted in the middle of an enrolment. Every acknowledged write is durable
(the gallery journal is fsync-ed before the call returns).

With ``root=None`` galleries live in memory only and vanish when the service stops.

Thumbnails (for the web app's people list): when enabled, an enrolment stores the 112x112 aligned crop of
its first photo's face as a JPEG, ``<gallery>/thumbnails/<identity id>.jpg``, keyed by the identity's stable
id (so renames keep it); removing the identity or the gallery deletes it. Identity ids are never reused, so
a thumbnail left by a removal made outside the service (``arcface gallery remove``) is never shown for
someone else.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arcface.errors import InputError
from arcface.gallery import EmbeddingContract, Gallery
from arcface.io_utils import atomic_write_bytes
from arcface.serve.errors import ApiError

#: Gallery names: letters, digits, ``_ . -``; 1 to 64 characters, not starting with a dot or dash.
GALLERY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

_MANIFEST = "manifest.json"
_THUMBS = "thumbnails"


def check_gallery_name(name: str) -> str:
    """Return ``name`` or raise a 422 :class:`ApiError` (names become directory names)."""
    if not GALLERY_NAME.fullmatch(name or ""):
        raise ApiError(
            422,
            "invalid_gallery_name",
            f"gallery name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'",
            "gallery",
        )
    return name


class GalleryRegistry:
    """Open galleries by name; create, delete and lock them.

    Args:
        root: folder holding one sub-folder per gallery (created if missing); ``None``: in memory.
        contract: the service's embedding contract; opening a gallery made by another model fails
            with 409 ``contract_mismatch``.
        threshold: default cosine threshold of identification (the recognizer's calibrated one).
        backend: vector index of every gallery (``"auto"``, ``"numpy"``, ``"faiss"``, ``"milvus"``).
        thumbnails: keep one face thumbnail per identity (see the module docstring).
    """

    def __init__(
        self,
        root: str | Path | None,
        contract: EmbeddingContract,
        threshold: float,
        backend: str = "auto",
        thumbnails: bool = True,
    ) -> None:
        self.root = Path(root) if root is not None else None
        if self.root is not None:
            if self.root.exists() and not self.root.is_dir():
                raise InputError(f"gallery root {self.root}: exists and is not a directory")
            self.root.mkdir(parents=True, exist_ok=True)
        self.contract = contract
        self.threshold = float(threshold)
        self.backend = backend
        self.thumbnails = bool(thumbnails)
        self._lock = threading.Lock()  # guards the three dicts below
        self._open: dict[str, Gallery] = {}
        self._write_locks: dict[str, threading.Lock] = {}
        self._memory_thumbs: dict[tuple[str, int], bytes] = {}
        self.sweep_tombstones()

    @property
    def persistent(self) -> bool:
        return self.root is not None

    def _path(self, name: str) -> Path | None:
        return None if self.root is None else self.root / check_gallery_name(name)

    def _exists_locked(self, name: str) -> bool:
        if name in self._open:
            return True
        path = self._path(name)
        return path is not None and (path / _MANIFEST).is_file()

    def _open_gallery(self, name: str, create: bool) -> Gallery:
        gallery = Gallery(self._path(name), backend=self.backend, threshold=self.threshold, create=create)
        stored = gallery.contract
        if stored is not None:
            try:
                stored.check_compatible(self.contract, "this service's embeddings")
            except InputError as exc:
                gallery.close()
                raise ApiError(409, "contract_mismatch", f"gallery {name!r}: {exc}", "gallery") from exc
        return gallery

    def sweep_tombstones(self) -> None:
        """Remove what deletions interrupted by a crash left behind (hidden ``.deleted-*`` folders)."""
        if self.root is not None:
            for p in self.root.glob(".deleted-*"):
                shutil.rmtree(p, ignore_errors=True)

    def names(self) -> list[str]:
        """Names of all galleries, sorted."""
        with self._lock:
            found = set(self._open)
            if self.root is not None:
                found.update(
                    p.name for p in self.root.iterdir() if (p / _MANIFEST).is_file() and GALLERY_NAME.fullmatch(p.name)
                )
            return sorted(found)

    def get(self, name: str) -> Gallery:
        """The open gallery ``name``; 404 ``gallery_not_found`` when there is none."""
        check_gallery_name(name)
        with self._lock:
            gallery = self._open.get(name)
            if gallery is None:
                if not self._exists_locked(name):
                    raise ApiError(404, "gallery_not_found", f"no gallery named {name!r}", "gallery")
                gallery = self._open_gallery(name, create=False)
                self._open[name] = gallery
            return gallery

    def create(self, name: str) -> Gallery:
        """Create an empty gallery; 409 ``gallery_exists`` when the name is taken."""
        check_gallery_name(name)
        with self._lock:
            if self._exists_locked(name):
                raise ApiError(409, "gallery_exists", f"a gallery named {name!r} already exists", "gallery")
            path = self._path(name)
            if path is not None and path.exists() and any(path.iterdir()):
                raise ApiError(
                    409, "gallery_exists", f"{name!r}: a folder of that name exists and is not a gallery", "gallery"
                )
            gallery = self._open_gallery(name, create=True)
            self._open[name] = gallery
            return gallery

    def _write_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._write_locks.setdefault(name, threading.Lock())

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Gallery]:
        """Hold ``name``'s write lock and yield the gallery (404 if it is missing or deleted meanwhile)."""
        check_gallery_name(name)
        with self._write_lock(name):
            yield self.get(name)

    def delete(self, name: str) -> None:
        """Delete gallery ``name`` and its files (waits for writes in progress).

        The folder is first renamed to a hidden tombstone (``.deleted-<name>-<random>``: an atomic step,
        after which the name is free and requests still holding the old gallery answer 404), then
        removed. A reader that races the removal can never leave a stray file under the gallery's name.
        """
        with self.writing(name) as gallery:
            with self._lock:
                gallery.close()
                self._open.pop(name, None)
                for key in [k for k in self._memory_thumbs if k[0] == name]:
                    del self._memory_thumbs[key]
                path = self._path(name)
                if path is None or not path.is_dir():
                    return
                tomb = path.with_name(f".deleted-{name}-{secrets.token_hex(6)}")
                try:
                    os.replace(path, tomb)
                except OSError as exc:
                    raise ApiError(
                        500, "delete_failed", f"gallery {name!r}: could not delete ({exc.strerror})"
                    ) from exc
        shutil.rmtree(tomb, ignore_errors=True)

    # ------------------------------------------------------------------ thumbnails
    def _thumb_path(self, name: str, ident_id: int) -> Path | None:
        path = self._path(name)
        return None if path is None else path / _THUMBS / f"{int(ident_id)}.jpg"

    def put_thumbnail(self, name: str, ident_id: int, jpeg: bytes) -> None:
        """Store identity ``ident_id``'s thumbnail (JPEG bytes; atomic on disk). Call under :meth:`writing`."""
        if not self.thumbnails:
            return
        path = self._thumb_path(name, ident_id)
        if path is None:
            with self._lock:
                self._memory_thumbs[(name, int(ident_id))] = bytes(jpeg)
            return
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, jpeg)

    def thumbnail(self, name: str, ident_id: int) -> bytes | None:
        """The JPEG bytes of a thumbnail, ``None`` when there is none."""
        path = self._thumb_path(name, ident_id)
        if path is None:
            with self._lock:
                return self._memory_thumbs.get((name, int(ident_id)))
        try:
            return path.read_bytes()
        except OSError:
            return None

    def drop_thumbnail(self, name: str, ident_id: int) -> None:
        """Delete identity ``ident_id``'s thumbnail, if any."""
        path = self._thumb_path(name, ident_id)
        if path is None:
            with self._lock:
                self._memory_thumbs.pop((name, int(ident_id)), None)
        else:
            path.unlink(missing_ok=True)

    def identity_json(self, name: str, gallery: Gallery, identity: str) -> dict[str, Any]:
        """:meth:`Gallery.info` of ``identity`` plus ``thumbnail``: whether one is stored."""
        info = gallery.info(identity)
        path = self._thumb_path(name, info["id"])
        if path is None:
            with self._lock:
                info["thumbnail"] = (name, info["id"]) in self._memory_thumbs
        else:
            info["thumbnail"] = path.is_file()
        return info

    def describe(self, name: str) -> dict[str, Any]:
        """Summary of one gallery: name, identity count, threshold, contract."""
        gallery = self.get(name)
        gallery.refresh()
        contract = gallery.contract
        return {
            "name": name,
            "identities": len(gallery),
            "threshold": gallery.threshold,
            "contract": contract.to_dict() if contract is not None else None,
        }

    def close(self) -> None:
        """Close every open gallery (saves large FAISS index caches)."""
        with self._lock:
            for gallery in self._open.values():
                gallery.close()
            self._open.clear()
