"""Crash-safe file primitives: an inter-process file lock (atomic writes come from :mod:`arcface.io_utils`)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from arcface.errors import DependencyError
from arcface.io_utils import atomic_write_bytes, fsync_dir

try:  # POSIX advisory locks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class FileLock:
    """An advisory ``flock`` on a file, shared (readers) or exclusive (writers), re-entrant per object.

    Two processes (or two :class:`FileLock` objects) holding an exclusive lock on the same path exclude
    each other; the operating system releases the lock when the holder dies (even on SIGKILL).

    A shared (reader) lock opens the file read-only, so readers work on read-only mounts; where the lock
    file is absent and cannot be created there (read-only file system, no permission), readers go on
    without a lock: no writer can write there either. An exclusive lock needs write access and raises
    the :class:`OSError` (``EROFS``, ``EACCES``, ...) otherwise.
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
        fd = self._open(exclusive)
        if fd is not None:
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
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)

    def _open(self, exclusive: bool) -> int | None:
        if exclusive:
            return os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            return os.open(str(self.path), os.O_RDONLY)
        except FileNotFoundError:
            if not self.path.parent.is_dir():
                raise
        try:
            return os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return None
            raise


__all__ = ["FileLock", "atomic_write_bytes", "fsync_dir"]
