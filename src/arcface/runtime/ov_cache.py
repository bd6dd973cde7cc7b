"""Compiled OpenVINO models kept on disk between processes, each checked against its SHA-256 before use.

Compiling models is the largest part of a one-off command's start-up with OpenVINO (``arcface verify`` on two
photos, profiled: four compilations took 0.37 s of a 0.92 s run on an AMD EPYC with AVX-512 BF16); importing a
compiled model takes about a quarter of compiling it (the recognizer: 28-31 against 116 ms), and the whole command
0.55 against 0.91 s (``benchmarks/bench_cold_start.py``). OpenVINO's own ``CACHE_DIR`` is not used: it imports
a damaged blob without noticing (4,000 bytes flipped in the middle of the recognizer's cached blob: embeddings at
cosine 0.07 to the right ones, no error). Here each entry starts with one line holding the SHA-256 of the
compiled model that follows; an entry whose digest does not match, or that OpenVINO refuses, is deleted and the
model compiled again. An entry that another user owns, or that every user may write, is not used at all (a digest
catches damage, not a planted file; see :func:`arcface.io_utils.untrusted`).

An entry's name digests what the compiled model depends on: the model file's SHA-256 (and its ``.bin`` for
OpenVINO IR), the input size it was specialised for, the compile settings, OpenVINO's version and the CPU
(:meth:`~arcface.runtime.cpu.CpuInfo.key`). ONNX external-data files are not part of the key: a model that keeps
its weights beside the ``.onnx`` file should not be changed in place (or the folder below cleared when it is).

Entries live in ``$ARCFACE_CACHE_DIR/openvino/`` (see :func:`arcface.io_utils.cache_dir`); the oldest are deleted
when they pass :data:`MAX_BYTES` together. A cache that cannot be written only costs the compile time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Format of an entry's first line; a change of layout changes this, so older entries are never read.
MAGIC = b"arcface-openvino-compiled-model 1 "
#: Total size the entries may take; past it, the least recently used are deleted (a detector canvas is about
#: 3 MB, the default recognizer 14 MB).
MAX_BYTES = 256 << 20


def cache_folder() -> Path:
    """The folder of the entries: ``openvino/`` in the library's cache folder."""
    from arcface.io_utils import cache_dir

    return cache_dir() / "openvino"


def _file_digests(model_path: str | os.PathLike) -> list[str]:
    from arcface.io_utils import sha256_file

    path = Path(model_path)
    files = [sha256_file(path)]
    if path.suffix.lower() == ".xml":
        files.append(sha256_file(path.with_suffix(".bin")))
    return files


def _key(what: dict[str, Any]) -> str:
    import openvino as ov

    what = {**what, "openvino": ov.get_version()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:40]


def entry_key(model_path: str | os.PathLike, size: tuple | None, config: dict[str, Any]) -> str:
    """The name of the entry for ``model_path`` compiled with ``config``, specialised for inputs of ``size``
    (dimensions after the batch; ``None``: as the file declares them)."""
    from arcface.runtime.cpu import cpu_info

    return _key(
        {
            "files": _file_digests(model_path),
            "size": list(size) if size is not None else None,
            "config": {k: str(v) for k, v in sorted(config.items())},
            "cpu": cpu_info().key(),
        }
    )


def _read_entry(path: Path) -> bytes | None:
    """The payload of the entry at ``path`` if its digest matches; a damaged entry, or one larger than
    :data:`MAX_BYTES` (not read), is deleted (with a warning), one that another user owns or may write is left
    alone and not used (:func:`arcface.io_utils.untrusted`)."""
    from arcface.io_utils import untrusted

    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            why = untrusted(st)
            if why:
                log.warning("%s: OpenVINO cache entry not used (%s)", path, why)
                return None
            if st.st_size > MAX_BYTES:  # never read into memory: no entry of ours is larger than the whole cache
                _drop(path, f"{st.st_size} bytes, more than the cache's {MAX_BYTES}")
                return None
            head = f.readline().rstrip(b"\n")
            payload = f.read()
    except OSError:
        return None
    if not head.startswith(MAGIC):
        _drop(path, "not an arcface entry of this format")
    elif head[len(MAGIC) :].decode("ascii", "replace") != hashlib.sha256(payload).hexdigest():
        _drop(path, "its SHA-256 does not match: the file is damaged")
    else:
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return payload
    return None


def _drop(path: Path, why: str) -> None:
    log.warning("%s: OpenVINO cache entry ignored and deleted (%s)", path, why)
    with contextlib.suppress(OSError):
        path.unlink()


def _write_entry(path: Path, payload: bytes) -> Path | None:
    from arcface.io_utils import atomic_write

    try:
        with atomic_write(path) as f:
            f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            f.write(payload)
    except OSError as exc:  # an unwritable folder, a full disk
        log.info("%s: not cached (%s)", path, exc)
        return None
    return path


def load(core: Any, key: str, config: dict[str, Any]) -> Any | None:
    """The compiled model stored under ``key``, or ``None`` when there is none or it fails its check (then the
    entry is deleted, with a warning naming it, and the caller compiles again)."""
    from arcface.errors import first_line

    path = cache_folder() / f"{key}.blob"
    payload = _read_entry(path)
    if payload is None:
        return None
    try:
        return core.import_model(payload, "CPU", config)
    except Exception as exc:  # OpenVINO raises its own exception types
        _drop(path, f"OpenVINO cannot import it: {first_line(exc)}")
        return None


def store(key: str, compiled: Any) -> Path | None:
    """Write ``compiled`` under ``key`` (atomically), then prune; ``None`` when the cache cannot be written."""
    path = cache_folder() / f"{key}.blob"
    try:
        payload = compiled.export_model().getvalue()
    except Exception as exc:  # OpenVINO raises its own exception types
        log.info("%s: compiled model not exported (%s)", path, exc)
        return None
    out = _write_entry(path, payload)
    if out is not None:
        prune(path.parent)
    return out


Ports = tuple[list[tuple[str, list]], list[tuple[str, list]]]


def load_ports(model_path: str | os.PathLike) -> Ports | None:
    """The names and shapes (``"?"`` for a free dimension) of the inputs and outputs of ``model_path``, as
    stored by :func:`store_ports`, so that a process whose compiled models are all cached never reads the model."""
    try:
        payload = _read_entry(cache_folder() / f"{_key({'ports': _file_digests(model_path)})}.ports")
    except OSError:  # no such model file: the caller's own read reports it
        return None
    if payload is None:
        return None
    try:
        ins, outs = json.loads(payload)
        return [(str(n), list(s)) for n, s in ins], [(str(n), list(s)) for n, s in outs]
    except (ValueError, TypeError):
        return None


def store_ports(model_path: str | os.PathLike, ports: Ports) -> None:
    """Keep the inputs and outputs of ``model_path`` (see :func:`load_ports`)."""
    path = cache_folder() / f"{_key({'ports': _file_digests(model_path)})}.ports"
    _write_entry(path, json.dumps([list(ports[0]), list(ports[1])]).encode())


def _entries(folder: Path) -> list[tuple[int, int, Path]]:
    """``(modification time ns, bytes, path)`` of each entry in ``folder`` (compiled models and port records)."""
    out = []
    for p in [*folder.glob("*.blob"), *folder.glob("*.ports")]:
        with contextlib.suppress(OSError):
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size, p))
    return out


def summary() -> dict[str, Any]:
    """``{"folder", "entries", "bytes", "max_bytes"}``: what the cache holds now (for ``arcface models list``)."""
    folder = cache_folder()
    entries = _entries(folder)
    return {"folder": str(folder), "entries": len(entries), "bytes": sum(e[1] for e in entries), "max_bytes": MAX_BYTES}


def prune(folder: Path, max_bytes: int | None = None) -> None:
    """Delete the least recently used entries of ``folder`` until they take at most ``max_bytes`` together."""
    limit = MAX_BYTES if max_bytes is None else max_bytes
    entries = _entries(folder)
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            p.unlink()
            total -= size
