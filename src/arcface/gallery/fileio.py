"""Crash-safe file primitives: atomic replace, directory fsync and an inter-process file lock."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from arcface.errors import DependencyError

try:  # POSIX advisory locks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry table to disk (makes a rename/create durable). No-op where unsupported."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    Writes a temporary file in the same directory, fsyncs it, ``os.replace``-s it over ``path`` and
    fsyncs the directory.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class FileLock:
    """An advisory ``flock`` on a file, shared (readers) or exclusive (writers), re-entrant per object.

    Two processes (or two :class:`FileLock` objects) holding an exclusive lock on the same path exclude
    each other; the operating system releases the lock when the holder dies (even on SIGKILL).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._depth = 0
        self._mode: int | None = None

    @contextlib.contextmanager
    def hold(self, exclusive: bool = True) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            raise DependencyError("gallery file locking needs POSIX fcntl (Linux/macOS)")
        want = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if self._depth > 0:
            if self._mode == fcntl.LOCK_SH and want == fcntl.LOCK_EX:
                raise RuntimeError("cannot upgrade a shared gallery lock to an exclusive one")
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, want)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._depth, self._mode = fd, 1, want
        try:
            yield
        finally:
            self._depth = 0
            self._fd, self._mode = None, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
