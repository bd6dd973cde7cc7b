"""The gallery's source of truth on disk: a snapshot plus an append-only, checksummed journal.

Directory layout::

    <db>/manifest.json          {"format": "arcface-gallery", "version": 1, "generation": g,
                                 "snapshot": "snapshot-<g>.npz" | null, "journal": "journal-<g>.jsonl"}
    <db>/snapshot-<g>.npz       identities at the start of generation g (numpy .npz, no pickles)
    <db>/journal-<g>.jsonl      one line per committed transaction: "<crc32 hex> <json>\\n"
    <db>/.lock                  flock target: exclusive for writers, shared for readers
    <db>/quarantine/            damaged records and torn tails, byte for byte, with a note of what was wrong

Durability: a transaction is one journal line, written with a single ``write`` and ``fsync``-ed before
the call returns; only then is it acknowledged. A process killed mid-write leaves at most a torn last
line (no newline), which is not applied; the next writer copies it to ``quarantine/`` before cutting it
off, so every acknowledged transaction survives and no byte is ever thrown away.

Damage: a complete line whose CRC-32 fails, or whose fields are malformed or do not apply (say, a
rename of an identity that does not exist), is reported with its line number (a ``logging`` warning and
:attr:`GalleryStore.damaged`) and skipped; the records after it still apply. The next writer copies
every damaged line into ``quarantine/`` and compacts, so the damage is preserved for inspection and
never silently dropped. A missing or unreadable ``manifest.json`` is rebuilt from the newest generation's
files, never replaced by an empty gallery.

Compaction writes a new snapshot and an empty journal under new names, then
switches ``manifest.json`` with an atomic ``os.replace``: a crash leaves either the old or the new
generation, both complete. Writers hold an exclusive file lock for the whole read-validate-append cycle
and first replay what other processes appended, so concurrent writers never lose or corrupt updates.

Embeddings are float32 and stored L2-normalised, one row per enrolled image.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import logging
import os
import re
import time
import zlib
from collections.abc import Container, Iterator
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
QUARANTINE = "quarantine"
_GEN_FILE = re.compile(r"^(snapshot|journal)-(\d+)\.(npz|jsonl)$")

#: Compact when the journal exceeds this many bytes and is larger than the snapshot.
COMPACT_MIN_BYTES = 32 * 1024 * 1024

log = logging.getLogger("arcface.gallery")


class GalleryGoneError(InputError):
    """The gallery directory disappeared (deleted by another request or process) while open."""


@dataclass(frozen=True)
class DamagedRecord:
    """A journal line that could not be applied.

    Attributes:
        journal: the journal file's name.
        line: 1-based line number in that file.
        offset: byte offset of the line's start.
        reason: what was wrong (checksum, malformed field, operation that does not apply).
        raw: the line's bytes, without its newline.
    """

    journal: str
    line: int
    offset: int
    reason: str
    raw: bytes = field(repr=False)


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


def _problem(payload: dict[str, Any], existing: Container[str], dim: int | None, seq: int) -> str | None:
    """Why ``payload`` cannot be applied on top of the identities named in ``existing`` (``None``: it can).

    Checks every field the appliers read, and that removals, renames and metadata edits name identities
    that exist as the record's earlier operations leave them (tracked here, ``existing`` is not copied).
    An enrolment's decoded embeddings are kept in the operation under ``"_emb"`` for the applier.
    """
    added: set[str] = set()
    removed: set[str] = set()

    def present(name: Any) -> bool:
        return name in added or (name in existing and name not in removed)

    def add(name: str) -> None:
        added.add(name)
        removed.discard(name)

    def drop(name: str) -> None:
        added.discard(name)
        removed.add(name)

    got = payload.get("seq")
    if not isinstance(got, int) or isinstance(got, bool) or got <= seq:
        return f"transaction number {got!r} does not follow {seq}"
    if not isinstance(payload.get("time", 0.0), (int, float)):
        return "time is not a number"
    ops = payload.get("ops")
    if not isinstance(ops, list) or not ops:
        return "no operations"
    for op in ops:
        kind = op.get("op") if isinstance(op, dict) else None
        if kind == "contract":
            if not isinstance(op.get("contract"), dict):
                return "contract operation without a contract"
            try:
                dim = EmbeddingContract.from_dict(op["contract"]).dim
            except InputError as exc:
                return str(exc)
        elif kind == "enroll":
            if not isinstance(op.get("name"), str) or not isinstance(op.get("id"), int):
                return "enroll operation without a name or an integer id"
            if not isinstance(op.get("meta") or {}, dict):
                return f"enroll of {op['name']!r}: metadata is not an object"
            emb = op.get("emb")
            try:
                arr = decode_array(emb)  # type: ignore[arg-type]
            except (TypeError, KeyError, ValueError) as exc:
                return f"enroll of {op['name']!r}: unreadable embeddings ({exc})"
            if arr.ndim != 2 or arr.shape[0] == 0 or (dim is not None and arr.shape[1] != dim):
                return f"enroll of {op['name']!r}: embeddings of shape {arr.shape} in a {dim}-d gallery"
            if not np.isfinite(arr).all():
                return f"enroll of {op['name']!r}: embeddings hold NaN or infinity"
            op["_emb"] = arr
            add(op["name"])
        elif kind == "remove":
            if not present(op.get("name")):
                return f"remove of {op.get('name')!r}, which does not exist"
            drop(op["name"])
        elif kind == "rename":
            old, new = op.get("old"), op.get("new")
            if not present(old) or not isinstance(new, str) or present(new):
                return f"rename of {old!r} to {new!r} does not apply"
            drop(old)
            add(new)
        elif kind == "meta":
            if not present(op.get("name")) or not isinstance(op.get("meta"), dict):
                return f"metadata edit of {op.get('name')!r} does not apply"
        else:
            return f"unknown operation {kind!r}"
    return None


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
        self._line = 0
        self._manifest_missing = False
        #: Damaged journal lines seen in the current generation (see the module docstring).
        self.damaged: list[DamagedRecord] = []
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
        if not (self.path / MANIFEST).exists() and not self._generation_files():
            if not create:
                raise InputError(f"gallery {self.path}: no gallery there (missing {MANIFEST})")
            others = [p.name for p in self.path.iterdir()] if self.path.is_dir() else []
            # leftovers of a creation killed before its manifest was written are fine to overwrite
            if [n for n in others if n != LOCK and not n.startswith(".") and not _GEN_FILE.match(n)]:
                raise InputError(
                    f"gallery {self.path}: directory is not empty and holds no gallery "
                    f"({MANIFEST} missing); refusing to write into it"
                )
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"gallery {self.path}: cannot create it ({exc.strerror})") from None
            with self._hold(exclusive=True), self._io("create the gallery"):
                if not (self.path / MANIFEST).exists() and not self._generation_files():
                    journal = "journal-000001.jsonl"
                    atomic_write_bytes(self.path / journal, b"")
                    self._write_manifest(1, None, journal)
        self.refresh()

    def _generation_files(self) -> dict[int, dict[str, str]]:
        """``{generation: {"snapshot": name, "journal": name}}`` of the files present."""
        assert self.path is not None
        found: dict[int, dict[str, str]] = {}
        if self.path.is_dir():
            for p in self.path.iterdir():
                m = _GEN_FILE.match(p.name)
                if m:
                    found.setdefault(int(m.group(2)), {})[m.group(1)] = p.name
        return found

    def _gone(self) -> GalleryGoneError:
        return GalleryGoneError(f"gallery {self.path}: no longer exists (it was deleted)")

    @contextlib.contextmanager
    def _io(self, what: str) -> Iterator[None]:
        """Turn file-system failures (disk full, read-only, permissions) into a clear :class:`InputError`."""
        try:
            yield
        except FileNotFoundError as exc:
            if self.path is not None and not self.path.is_dir():
                raise self._gone() from None
            raise InputError(f"gallery {self.path}: cannot {what} ({exc.strerror}: {exc.filename})") from None
        except OSError as exc:
            hint = {
                errno.ENOSPC: "; the disk is full, nothing was changed",
                errno.EROFS: "; the gallery is on a read-only file system (searching and listing still work)",
                errno.EACCES: "; no write permission (searching and listing still work)",
                errno.EPERM: "; no write permission (searching and listing still work)",
            }.get(exc.errno or 0, "")
            raise InputError(f"gallery {self.path}: cannot {what} ({exc.strerror}){hint}") from None

    @contextlib.contextmanager
    def _hold(self, exclusive: bool) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with contextlib.ExitStack() as stack:
            with self._io("take the writer lock" if exclusive else "take the reader lock"):
                stack.enter_context(self._lock.hold(exclusive=exclusive))
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
        self._manifest_missing = False
        try:
            manifest = json.loads(where.read_text(encoding="utf-8"))
            problem = None if isinstance(manifest, dict) else "not a JSON object"
        except FileNotFoundError:
            if not self.path.is_dir():
                raise self._gone() from None
            manifest, problem = None, f"{MANIFEST} is missing"
        except (OSError, ValueError) as exc:
            manifest, problem = None, f"unreadable {MANIFEST} ({exc})"
        if problem is None and manifest.get("format") != FORMAT:
            problem = f"{MANIFEST} is not an arcface gallery manifest"
        if problem is None and manifest.get("version") == VERSION:
            gen, journal = manifest.get("generation"), manifest.get("journal")
            if not isinstance(gen, int) or not isinstance(journal, str) or not _GEN_FILE.match(journal):
                problem = f"{MANIFEST} has malformed fields"
        if problem is not None:
            return self._recovered_manifest(problem)
        if manifest.get("version") != VERSION:
            raise InputError(
                f"gallery {self.path}: format version {manifest.get('version')} is not supported "
                f"(this arcface reads version {VERSION})"
            )
        return manifest

    def _recovered_manifest(self, problem: str) -> dict[str, Any]:
        """The manifest rebuilt from the newest generation's files (written back by the next writer)."""
        gens = self._generation_files()
        usable = sorted(g for g, files in gens.items() if "journal" in files and (g == 1 or "snapshot" in files))
        if not usable:
            raise InputError(
                f"gallery {self.path}: {problem}, and no snapshot/journal files to rebuild it from; nothing was changed"
            )
        gen = usable[-1]
        if not self._manifest_missing:
            log.warning(
                "gallery %s: %s; rebuilt from generation %d (%s)",
                self.path,
                problem,
                gen,
                ", ".join(gens[gen].values()),
            )
        self._manifest_missing = True
        return {
            "format": FORMAT,
            "version": VERSION,
            "generation": gen,
            "snapshot": gens[gen].get("snapshot"),
            "journal": gens[gen]["journal"],
        }

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
            self._line = 0
            self.damaged = []
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
        except FileNotFoundError:
            if not self.path.is_dir():
                raise self._gone() from None
            raise InputError(f"gallery {self.path}: snapshot {name} is missing; nothing was changed") from None
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise InputError(f"gallery {self.path}: unreadable snapshot {name} ({exc}); nothing was changed") from None
        try:
            self.contract = EmbeddingContract.from_dict(info["contract"]) if info.get("contract") else None
            self.next_id, self.seq = int(info["next_id"]), int(info["seq"])
            starts = np.concatenate([[0], np.cumsum(counts)])
            for i, ident_id in enumerate(ids.tolist()):
                ident = Identity(
                    id=int(ident_id),
                    name=str(info["names"][i]),
                    embeddings=np.array(emb[starts[i] : starts[i + 1]], dtype=np.float32),
                    metadata=dict(info["metadata"][i]),
                    created=float(info["created"][i]),
                    updated=float(info["updated"][i]),
                )
                self.identities[ident.name] = ident
                self.by_id[ident.id] = ident
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputError(
                f"gallery {self.path}: snapshot {name} has malformed fields ({type(exc).__name__}: {exc}); "
                "nothing was changed"
            ) from None

    def _replay(self) -> None:
        assert self.path is not None and self._journal is not None
        where = self.path / self._journal
        try:
            with open(where, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            if not self.path.is_dir():
                raise self._gone() from None
            raise InputError(f"gallery {self.path}: journal {self._journal} is missing; nothing was changed") from None
        except OSError as exc:
            raise InputError(f"gallery {self.path}: unreadable journal {self._journal} ({exc})") from exc
        pos = 0
        self._torn = False
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:  # a torn last line (writer killed mid-write): never acknowledged, not applied
                self._torn = True
                break
            line = data[pos:end]
            self._line += 1
            payload = _decode_line(line)
            if payload is None:
                problem: str | None = "checksum mismatch or unreadable record"
            else:
                dim = self.contract.dim if self.contract else None
                problem = _problem(payload, self.identities, dim, self.seq)
            if problem is None:
                assert payload is not None
                self._apply(payload)
            else:
                rec = DamagedRecord(self._journal, self._line, self._offset + pos, problem, bytes(line))
                self.damaged.append(rec)
                log.warning(
                    "gallery %s: journal %s line %d is damaged (%s); skipped, and kept in %s/ by the next write",
                    self.path,
                    rec.journal,
                    rec.line,
                    problem,
                    QUARANTINE,
                )
            pos = end + 1
        self._offset += pos

    def _quarantine(self, name: str, data: bytes, note: str) -> Path:
        """Keep ``data`` byte for byte under ``quarantine/`` (with a ``.txt`` note); returns the file."""
        assert self.path is not None
        folder = self.path / QUARANTINE
        target = folder / name
        k = 1
        while target.exists():
            k += 1
            target = folder / f"{name}.{k}"
        atomic_write_bytes(target, data)
        atomic_write_bytes(target.with_name(target.name + ".txt"), (note + "\n").encode("utf-8"))
        return target

    def _repair_locked(self) -> None:
        """Under the writer lock: quarantine damaged lines, write a missing manifest, compact away damage."""
        assert self.path is not None
        if self.damaged:
            for rec in self.damaged:
                where = self._quarantine(
                    f"{Path(rec.journal).stem}.line-{rec.line}.bad",
                    rec.raw,
                    f"{rec.journal} line {rec.line} (byte {rec.offset}): {rec.reason}; quarantined {time.ctime()}",
                )
                log.warning("gallery %s: damaged record kept in %s", self.path, where)
            self._compact_locked()  # the new generation holds every record that applied; the bad ones stay here
        elif self._manifest_missing:
            self._write_manifest(self._generation, self._snapshot_name(), self._journal or "")
            self._manifest_missing = False

    def _snapshot_name(self) -> str | None:
        name = f"snapshot-{self._generation:06d}.npz"
        return name if self.path is not None and (self.path / name).is_file() else None

    # ------------------------------------------------------------------ applying records
    def _apply(self, payload: dict[str, Any]) -> None:
        """Apply one record already checked by :func:`_problem`."""
        for op in payload["ops"]:
            self._apply_op(op, float(payload.get("time", 0.0)))
        self.seq = int(payload["seq"])

    def _apply_op(self, op: dict[str, Any], now: float) -> None:
        kind = op["op"]
        if kind == "contract":
            self.contract = EmbeddingContract.from_dict(op["contract"])
        elif kind == "enroll":
            emb = op.pop("_emb", None)  # decoded by _problem on replay; commits pass the encoded form
            if emb is None:
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
                with self._io("repair the gallery"):
                    self._repair_locked()
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
            with self._io("write to the journal"):
                fd = os.open(str(where), os.O_RDWR)
                try:
                    if self._torn:  # keep, then cut, a torn tail left by a killed writer before appending
                        os.lseek(fd, self._offset, os.SEEK_SET)
                        tail = os.read(fd, 1 << 24)
                        if tail:
                            kept = self._quarantine(
                                f"{Path(self._journal).stem}.tail-{self._offset}.bin",
                                tail,
                                f"{self._journal}: {len(tail)} bytes after the last complete record at byte "
                                f"{self._offset} (an interrupted write, never acknowledged); {time.ctime()}",
                            )
                            log.warning("gallery %s: incomplete last record kept in %s", self.path, kept)
                        os.ftruncate(fd, self._offset)
                        self._torn = False
                    os.lseek(fd, self._offset, os.SEEK_SET)
                    view = memoryview(line)
                    try:
                        while view:
                            view = view[os.write(fd, view) :]
                        os.fsync(fd)
                    except OSError:
                        with contextlib.suppress(OSError):  # leave no partial record behind
                            os.ftruncate(fd, self._offset)
                        raise
                finally:
                    os.close(fd)
            self._offset += len(line)
            self._line += 1
        self._apply(payload)
        if self.path is not None and self._offset > max(COMPACT_MIN_BYTES, self._snapshot_bytes):
            with self._io("compact the gallery"):
                self._compact_locked()

    def compact(self) -> None:
        """Fold the journal into a new snapshot (atomic; readers see the old or the new generation)."""
        if self.path is None:
            return
        with self.transaction(), self._io("compact the gallery"):
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
        self._line, self.damaged, self._manifest_missing = 0, [], False
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
