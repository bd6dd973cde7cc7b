"""File utilities: atomic writes (data reaches its final name whole or not at all) and cached SHA-256 digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries to disk (makes a rename or create durable); a no-op where unsupported."""
    with contextlib.suppress(OSError):
        dfd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` so that readers see either the old file or the whole new one."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text written atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` written atomically."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file (cached by path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def untrusted(st: os.stat_result) -> str | None:
    """Why a file in the cache folder must not be used, or ``None``: another user owns it, or every user may
    write it (a cache folder shared through ``$ARCFACE_CACHE_DIR``, say under ``/tmp``). A digest written beside
    or inside an entry catches damage, not a planted file, since anyone can compute one. POSIX only."""
    if not hasattr(os, "getuid"):
        return None
    if st.st_uid != os.getuid():
        return f"owned by user id {st.st_uid}, not by this user ({os.getuid()})"
    if st.st_mode & 0o002:
        return "writable by every user"
    return None


def cache_dir() -> Path:
    """The library's cache folder: ``$ARCFACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/arcface`` or ``~/.cache/arcface``
    (engine timings, quantized models; created by the writers that need it)."""
    root = os.environ.get("ARCFACE_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "arcface")
    return Path(root).expanduser()
