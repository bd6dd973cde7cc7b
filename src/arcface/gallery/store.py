"""The gallery's source of truth on disk: a snapshot plus an append-only, checksummed journal.

Directory layout::

    <db>/manifest.json          {"format": "arcface-gallery", "version": 1, "generation": g,
                                 "snapshot": "snapshot-<g>.npz" | null, "journal": "journal-<g>.jsonl"}
    <db>/snapshot-<g>.npz       identities at the start of generation g (numpy .npz, no pickles)
    <db>/journal-<g>.jsonl      one line per committed transaction: "<crc32 hex> <json>\\n"
    <db>/.lock                  flock target: exclusive for writers, shared for readers

Durability: a transaction is one journal line, written with a single ``write`` and ``fsync``-ed before
the call returns; only then is it acknowledged. A process killed mid-write leaves at most a torn last
line, which fails its CRC-32 and is ignored (and truncated by the next writer), so every acknowledged
transaction survives. Compaction writes a new snapshot and an empty journal under new names, then
switches ``manifest.json`` with an atomic ``os.replace``: a crash leaves either the old or the new
generation, both complete. Writers hold an exclusive file lock for the whole read-validate-append cycle
and first replay what other processes appended, so concurrent writers never lose or corrupt updates.

Embeddings are float32 and stored L2-normalised, one row per enrolled image.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.gallery.contract import EmbeddingContract
from arcface.gallery.fileio import FileLock, atomic_write_bytes, fsync_dir

FORMAT = "arcface-gallery"
VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
_GEN_FILE = re.compile(r"^(snapshot|journal)-(\d+)\.(npz|jsonl)$")

#: Compact when the journal exceeds this many bytes and is larger than the snapshot.
COMPACT_MIN_BYTES = 32 * 1024 * 1024


@dataclass
class Identity:
    """One enrolled person.

    Attributes:
        id: stable integer key (kept across renames; used by the vector indexes).
        name: unique display name.
        embeddings: float32 ``(k, D)``, unit rows, one per enrolled image.
        metadata: JSON-able dict.
        created, updated: UNIX times in seconds.
    """

    id: int
    name: str
    embeddings: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    _template: np.ndarray | None = field(default=None, repr=False)

    @property
    def template(self) -> np.ndarray:
        """L2-normalised mean of the identity's unit embeddings, float32 ``(D,)``."""
        if self._template is None:
            mean = self.embeddings.astype(np.float64).mean(axis=0)
            norm = np.linalg.norm(mean)
            # Antipodal embeddings can cancel; fall back to the first one rather than a zero vector.
            self._template = (mean / norm if norm > 1e-9 else self.embeddings[0]).astype(np.float32)
        return self._template

    @property
    def count(self) -> int:
        return int(self.embeddings.shape[0])


def encode_array(x: np.ndarray) -> dict[str, Any]:
    x = np.ascontiguousarray(x, dtype="<f4")
    return {"shape": list(x.shape), "f32": base64.b64encode(x.tobytes()).decode("ascii")}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["f32"])
    return np.frombuffer(raw, dtype="<f4").reshape(d["shape"]).astype(np.float32)


def _encode_line(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    crc = zlib.crc32(body.encode("ascii")) & 0xFFFFFFFF
    return f"{crc:08x} {body}\n".encode("ascii")


def _decode_line(line: bytes) -> dict[str, Any] | None:
    """Parse one journal line (without its newline); ``None`` when torn or corrupt."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body) & 0xFFFFFFFF:
            return None
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


class GalleryStore:
    """Identities kept in memory and mirrored to a gallery directory (or only in memory: ``path=None``).

    Mutations go through :meth:`commit` inside :meth:`transaction`. Consumers (the vector index) learn
    what changed from :meth:`drain_changes`.
    """

    def __init__(self, path: str | Path | None, create: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.identities: dict[str, Identity] = {}
        self.by_id: dict[int, Identity] = {}
        self.contract: EmbeddingContract | None = None
        self.next_id = 0
        self.seq = 0
        self._generation = -1
        self._journal: str | None = None
        self._offset = 0
        self._torn = False
        self._snapshot_bytes = 0
        self._changed: set[int] = set()
        self._reloaded = True
        self._lock = FileLock(self.path / LOCK) if self.path is not None else None
        if self.path is not None:
            self._open(create)

    # ------------------------------------------------------------------ opening and reading
    def _open(self, create: bool) -> None:
        assert self.path is not None
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"gallery {self.path}: exists and is not a directory")
        if not (self.path / MANIFEST).exists():
            if not create:
                raise InputError(f"gallery {self.path}: no gallery there (missing {MANIFEST})")
            others = [p.name for p in self.path.iterdir()] if self.path.is_dir() else []
            # leftovers of a creation killed before its manifest was written are fine to overwrite
            if [n for n in others if n != LOCK and not n.startswith(".") and not _GEN_FILE.match(n)]:
                raise InputError(
                    f"gallery {self.path}: directory is not empty and holds no gallery "
                    f"({MANIFEST} missing); refusing to write into it"
                )
            self.path.mkdir(parents=True, exist_ok=True)
            with self._hold(exclusive=True):
                if not (self.path / MANIFEST).exists():
                    journal = "journal-000001.jsonl"
                    atomic_write_bytes(self.path / journal, b"")
                    self._write_manifest(1, None, journal)
        self.refresh()

    @contextlib.contextmanager
    def _hold(self, exclusive: bool) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock.hold(exclusive=exclusive):
                yield

    def _write_manifest(self, generation: int, snapshot: str | None, journal: str) -> None:
        assert self.path is not None
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "generation": generation,
            "snapshot": snapshot,
            "journal": journal,
        }
        atomic_write_bytes(self.path / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())

    def _read_manifest(self) -> dict[str, Any]:
        assert self.path is not None
        where = self.path / MANIFEST
        try:
            manifest = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"gallery {self.path}: unreadable {MANIFEST} ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"gallery {self.path}: {MANIFEST} is not an arcface gallery manifest")
        if manifest.get("version") != VERSION:
            raise InputError(
                f"gallery {self.path}: format version {manifest.get('version')} is not supported "
                f"(this arcface reads version {VERSION})"
            )
        return manifest

    def refresh(self) -> None:
        """Catch up with what other processes committed (cheap when nothing changed)."""
        if self.path is None:
            return
        with self._hold(exclusive=False):
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        manifest = self._read_manifest()
        if manifest["generation"] != self._generation:
            self._reset()
            if manifest.get("snapshot"):
                self._load_snapshot(manifest["snapshot"])
            self._generation = int(manifest["generation"])
            self._journal = str(manifest["journal"])
            self._offset = 0
        self._replay()

    def _reset(self) -> None:
        self.identities, self.by_id = {}, {}
        self.contract, self.next_id, self.seq = None, 0, 0
        self._changed, self._reloaded = set(), True
        self._snapshot_bytes = 0

    def _load_snapshot(self, name: str) -> None:
        assert self.path is not None
        where = self.path / name
        try:
            self._snapshot_bytes = where.stat().st_size
            with np.load(where, allow_pickle=False) as z:
                info = json.loads(bytes(z["info"]).decode("utf-8"))
                ids, counts, emb = z["ids"], z["counts"], z["embeddings"]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"gallery {self.path}: unreadable snapshot {name} ({exc})") from exc
        self.contract = EmbeddingContract.from_dict(info["contract"]) if info.get("contract") else None
        self.next_id, self.seq = int(info["next_id"]), int(info["seq"])
        starts = np.concatenate([[0], np.cumsum(counts)])
        for i, ident_id in enumerate(ids.tolist()):
            ident = Identity(
                id=int(ident_id),
                name=info["names"][i],
                embeddings=np.array(emb[starts[i] : starts[i + 1]], dtype=np.float32),
                metadata=info["metadata"][i],
                created=info["created"][i],
                updated=info["updated"][i],
            )
            self.identities[ident.name] = ident
            self.by_id[ident.id] = ident

    def _replay(self) -> None:
        assert self.path is not None and self._journal is not None
        where = self.path / self._journal
        try:
            with open(where, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError as exc:
            raise InputError(f"gallery {self.path}: unreadable journal {self._journal} ({exc})") from exc
        pos = 0
        self._torn = False
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:  # a torn last line (writer killed mid-write): not acknowledged, ignore
                self._torn = True
                break
            payload = _decode_line(data[pos:end])
            if payload is None or payload.get("seq") != self.seq + 1:
                if data.find(b"\n", end + 1) >= 0 or (payload is not None):
                    raise InputError(
                        f"gallery {self.path}: journal {self._journal} is corrupt at byte "
                        f"{self._offset + pos} (a damaged record is followed by others)"
                    )
                self._torn = True
                break
            self._apply(payload)
            pos = end + 1
        self._offset += pos

    # ------------------------------------------------------------------ applying records
    def _apply(self, payload: dict[str, Any]) -> None:
        for op in payload["ops"]:
            self._apply_op(op, float(payload.get("time", 0.0)))
        self.seq = int(payload["seq"])

    def _apply_op(self, op: dict[str, Any], now: float) -> None:
        kind = op["op"]
        if kind == "contract":
            self.contract = EmbeddingContract.from_dict(op["contract"])
        elif kind == "enroll":
            emb = decode_array(op["emb"])
            ident = self.identities.get(op["name"])
            if ident is None:
                ident = Identity(op["id"], op["name"], emb, dict(op.get("meta") or {}), now, now)
                self.identities[ident.name] = ident
                self.by_id[ident.id] = ident
            else:
                ident.embeddings = emb if op.get("replace") else np.concatenate([ident.embeddings, emb])
                ident.metadata.update(op.get("meta") or {})
                ident.updated, ident._template = now, None
            self.next_id = max(self.next_id, int(op["id"]) + 1)
            self._changed.add(ident.id)
        elif kind == "remove":
            ident = self.identities.pop(op["name"])
            del self.by_id[ident.id]
            self._changed.add(ident.id)
        elif kind == "rename":
            ident = self.identities.pop(op["old"])
            ident.name, ident.updated = op["new"], now
            self.identities[ident.name] = ident
            self._changed.add(ident.id)
        elif kind == "meta":
            ident = self.identities[op["name"]]
            ident.metadata, ident.updated = dict(op["meta"]), now
        else:  # pragma: no cover - written by a newer version
            raise InputError(f"gallery {self.path}: unknown journal operation {kind!r}")

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def transaction(self) -> Iterator[GalleryStore]:
        """Hold the writer lock and see every committed change; validate, then :meth:`commit`."""
        with self._hold(exclusive=True):
            if self.path is not None:
                self._refresh_locked()
            yield self

    def commit(self, ops: list[dict[str, Any]]) -> None:
        """Durably append one transaction (a list of operations) and apply it. Call inside transaction."""
        if not ops:
            return
        payload = {"seq": self.seq + 1, "time": time.time(), "ops": ops}
        if self.path is not None:
            assert self._journal is not None
            line = _encode_line(payload)
            where = self.path / self._journal
            fd = os.open(str(where), os.O_WRONLY)
            try:
                if self._torn:  # drop a torn tail left by a killed writer before appending
                    os.ftruncate(fd, self._offset)
                    self._torn = False
                os.lseek(fd, self._offset, os.SEEK_SET)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._offset += len(line)
        self._apply(payload)
        if self.path is not None and self._offset > max(COMPACT_MIN_BYTES, self._snapshot_bytes):
            self._compact_locked()

    def compact(self) -> None:
        """Fold the journal into a new snapshot (atomic; readers see the old or the new generation)."""
        if self.path is None:
            return
        with self.transaction():
            self._compact_locked()

    def _compact_locked(self) -> None:
        assert self.path is not None
        gen = self._generation + 1
        snapshot, journal = f"snapshot-{gen:06d}.npz", f"journal-{gen:06d}.jsonl"
        idents = sorted(self.identities.values(), key=lambda i: i.id)
        dim = self.contract.dim if self.contract else 0
        info = {
            "contract": self.contract.to_dict() if self.contract else None,
            "next_id": self.next_id,
            "seq": self.seq,
            "names": [i.name for i in idents],
            "metadata": [i.metadata for i in idents],
            "created": [i.created for i in idents],
            "updated": [i.updated for i in idents],
        }
        buf = io.BytesIO()
        np.savez(
            buf,
            info=np.frombuffer(json.dumps(info).encode("utf-8"), dtype=np.uint8),
            ids=np.array([i.id for i in idents], dtype=np.int64),
            counts=np.array([i.count for i in idents], dtype=np.int64),
            embeddings=(np.concatenate([i.embeddings for i in idents]) if idents else np.zeros((0, dim), np.float32)),
        )
        atomic_write_bytes(self.path / snapshot, buf.getvalue())
        atomic_write_bytes(self.path / journal, b"")
        self._write_manifest(gen, snapshot, journal)
        self._generation, self._journal, self._offset, self._torn = gen, journal, 0, False
        self._snapshot_bytes = len(buf.getvalue())
        for p in self.path.iterdir():  # files of older (or abandoned) generations
            m = _GEN_FILE.match(p.name)
            if m and int(m.group(2)) != gen:
                with contextlib.suppress(OSError):
                    p.unlink()
        fsync_dir(self.path)

    @property
    def state_key(self) -> str:
        """Identifies the committed state held in memory (generation and transaction number)."""
        return f"{self._generation}:{self.seq}"

    # ------------------------------------------------------------------ change feed
    def drain_changes(self) -> tuple[bool, set[int]]:
        """``(reloaded, changed_ids)`` since the last call; ``reloaded``: rebuild everything."""
        out = (self._reloaded, self._changed)
        self._reloaded, self._changed = False, set()
        return out

    def files(self) -> list[str]:
        """Names of the files of the current generation (for tests and tools)."""
        if self.path is None:
            return []
        m = self._read_manifest()
        return [n for n in (m.get("snapshot"), m.get("journal")) if n]
