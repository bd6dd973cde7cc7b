"""InsightFace RecordIO (``train.rec`` + ``train.idx``) read and written without mxnet.

File format (MXNet/dmlc RecordIO):

* every record is ``uint32 magic (0xced7230a)``, ``uint32 lrecord``, payload, zero padding to 4 bytes;
  ``lrecord``'s top 3 bits are a continuation flag (0 whole record, 1 first part, 2 middle part,
  3 last part) and its lower 29 bits the part's length. A writer splits a payload where the magic word
  occurs at a 4-byte aligned offset; a reader joins the parts re-inserting the magic word.
* an InsightFace payload starts with an ``IRHeader`` ``struct '<IfQQ'`` (flag, label, id, id2); when
  ``flag > 0`` it is followed by ``flag`` float32 labels (and ``label`` is unused); then the JPEG bytes.
* record 0 is a header record whose labels ``(a, b)`` say images occupy indices ``[1, a)``; indices
  ``[a, b)`` hold one record per identity whose labels are that identity's image range ``[start, end)``.
* ``train.idx`` is text, one ``"index\\toffset"`` line per record (byte offset of its magic word).

File handles are opened lazily and reopened after ``fork`` (DataLoader workers), so a reader can be
pickled into worker processes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcface.errors import InputError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LEN_MASK = (1 << 29) - 1
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)


class CorruptRecordError(InputError):
    """A record of a ``.rec`` file is truncated or malformed."""


@dataclass(frozen=True)
class IRHeader:
    """InsightFace image-record header.

    Attributes:
        flag: number of extra float32 labels (0: the scalar ``label`` is used).
        label: tuple of float labels (one element when ``flag == 0``).
        id, id2: free 64-bit fields (insightface stores the record index in ``id``).
    """

    flag: int
    label: tuple[float, ...]
    id: int = 0
    id2: int = 0


def pack_payload(header: IRHeader, data: bytes = b"") -> bytes:
    """Serialise an :class:`IRHeader` (and image bytes) into a record payload."""
    if len(header.label) == 1 and header.flag == 0:
        head = struct.pack(_IR_FORMAT, 0, float(header.label[0]), header.id, header.id2)
        return head + data
    labels = np.asarray(header.label, dtype="<f4")
    head = struct.pack(_IR_FORMAT, len(labels), 0.0, header.id, header.id2)
    return head + labels.tobytes() + data


def unpack_payload(payload: bytes) -> tuple[IRHeader, bytes]:
    """Split a record payload into its :class:`IRHeader` and the image bytes."""
    if len(payload) < _IR_SIZE:
        raise CorruptRecordError(f"record payload of {len(payload)} bytes is shorter than an IRHeader")
    flag, label, id_, id2 = struct.unpack_from(_IR_FORMAT, payload, 0)
    if flag == 0:
        return IRHeader(0, (float(label),), id_, id2), payload[_IR_SIZE:]
    end = _IR_SIZE + 4 * flag
    if flag > (1 << 20) or end > len(payload):
        raise CorruptRecordError(f"IRHeader flag {flag} runs past the end of a {len(payload)}-byte payload")
    labels = np.frombuffer(payload, dtype="<f4", count=flag, offset=_IR_SIZE)
    return IRHeader(int(flag), tuple(float(v) for v in labels), id_, id2), payload[end:]


def _split_payload(payload: bytes) -> list[bytes]:
    """Cut ``payload`` at every 4-byte aligned occurrence of the magic word (dmlc writer rule)."""
    parts: list[bytes] = []
    start = 0
    n_aligned = len(payload) - len(payload) % 4
    pos = payload.find(_MAGIC_BYTES, 0, n_aligned)
    while pos != -1:
        if pos % 4 == 0:
            parts.append(payload[start:pos])
            start = pos + 4
            pos = payload.find(_MAGIC_BYTES, start, n_aligned)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1, n_aligned)
    parts.append(payload[start:])
    return parts


def encode_record(payload: bytes) -> bytes:
    """One payload as the bytes of a RecordIO record (possibly several continuation parts)."""
    parts = _split_payload(payload)
    out = bytearray()
    for i, part in enumerate(parts):
        if len(parts) == 1:
            cflag = 0
        elif i == 0:
            cflag = 1
        elif i == len(parts) - 1:
            cflag = 3
        else:
            cflag = 2
        if len(part) > _LEN_MASK:
            raise InputError(f"record part of {len(part)} bytes exceeds RecordIO's 2^29-1 byte limit")
        out += _MAGIC_BYTES + struct.pack("<I", (cflag << 29) | len(part)) + part
        out += b"\0" * (-len(part) % 4)
    return bytes(out)


class RecordReader:
    """Random access to an indexed RecordIO file (``.rec`` + ``.idx``).

    Args:
        rec_path: the ``.rec`` file.
        idx_path: its ``.idx`` file (default: same stem with suffix ``.idx``).

    The file handle is opened on first use in each process, so instances are safe to send to
    DataLoader workers (``fork`` or ``spawn``).
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        if not self.rec_path.is_file():
            raise InputError(f"{self.rec_path}: RecordIO file not found")
        if not self.idx_path.is_file():
            raise InputError(f"{self.idx_path}: RecordIO index (.idx) not found")
        self.offsets: dict[int, int] = {}
        with open(self.idx_path, encoding="ascii", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                fields = line.split()
                try:
                    self.offsets[int(fields[0])] = int(fields[1])
                except (ValueError, IndexError) as exc:
                    raise InputError(f"{self.idx_path}:{lineno}: expected 'index<TAB>offset', got {line!r}") from exc
        self.size = self.rec_path.stat().st_size
        self._fh = None
        self._pid = -1

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fh"], state["_pid"] = None, -1
        return state

    def _file(self):
        if self._fh is None or self._pid != os.getpid():
            # After fork the inherited handle shares its offset with the parent: open our own.
            self._fh = open(self.rec_path, "rb")  # noqa: SIM115 - lives as long as the reader
            self._pid = os.getpid()
        return self._fh

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh = None

    def keys(self) -> list[int]:
        return sorted(self.offsets)

    def read_at(self, offset: int) -> bytes:
        """The payload of the record whose magic word is at byte ``offset``."""
        fh = self._file()
        fh.seek(offset)
        chunks: list[bytes] = []
        while True:
            head = fh.read(8)
            if len(head) < 8:
                raise CorruptRecordError(f"{self.rec_path}: truncated record header at byte {offset}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise CorruptRecordError(f"{self.rec_path}: bad magic 0x{magic:08x} at byte {fh.tell() - 8}")
            cflag, length = lrec >> 29, lrec & _LEN_MASK
            data = fh.read(length)
            if len(data) < length:
                raise CorruptRecordError(f"{self.rec_path}: record at byte {offset} is truncated")
            fh.seek(-length % 4, os.SEEK_CUR)
            if chunks or cflag in (1, 2, 3):
                if chunks and cflag not in (2, 3):
                    raise CorruptRecordError(f"{self.rec_path}: broken continuation at byte {offset}")
                if not chunks and cflag != 1:
                    raise CorruptRecordError(f"{self.rec_path}: record at byte {offset} starts mid-record")
                chunks.append(data)
                if cflag == 3:
                    return _MAGIC_BYTES.join(chunks)
            else:
                return data

    def read(self, index: int) -> bytes:
        """The payload of record ``index``."""
        try:
            offset = self.offsets[index]
        except KeyError:
            raise InputError(f"{self.idx_path}: no record with index {index}") from None
        return self.read_at(offset)

    def read_header(self, index: int) -> IRHeader:
        """Only the IRHeader of record ``index`` (reads a few dozen bytes)."""
        fh = self._file()
        offset = self.offsets[index]
        fh.seek(offset)
        head = fh.read(8 + _IR_SIZE)
        if len(head) < 8 + _IR_SIZE:
            raise CorruptRecordError(f"{self.rec_path}: truncated record at byte {offset}")
        magic, lrec = struct.unpack_from("<II", head)
        if magic != MAGIC:
            raise CorruptRecordError(f"{self.rec_path}: bad magic 0x{magic:08x} at byte {offset}")
        length = lrec & _LEN_MASK
        if length < _IR_SIZE or offset + 8 + length > self.size:
            raise CorruptRecordError(f"{self.rec_path}: record at byte {offset} has bad length {length}")
        flag = struct.unpack_from("<I", head, 8)[0]
        if flag == 0 or lrec >> 29 != 0:
            return unpack_payload(head[8:] if flag == 0 else self.read_at(offset))[0]
        extra = fh.read(4 * flag) if flag <= (1 << 20) else b""
        return unpack_payload(head[8:] + extra)[0]

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordWriter:
    """Writes an indexed RecordIO file; ``.rec``/``.idx`` appear atomically on :meth:`close`."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        self.rec_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_rec = self.rec_path.with_name(self.rec_path.name + f".tmp{os.getpid()}")
        self._tmp_idx = self.idx_path.with_name(self.idx_path.name + f".tmp{os.getpid()}")
        self._rec = open(self._tmp_rec, "wb")  # noqa: SIM115
        self._idx = open(self._tmp_idx, "w", encoding="ascii")  # noqa: SIM115
        self._closed = False

    def write(self, index: int, payload: bytes) -> None:
        """Append the record ``index`` with ``payload`` (bytes after the IRHeader included)."""
        offset = self._rec.tell()
        self._rec.write(encode_record(payload))
        self._idx.write(f"{index}\t{offset}\n")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rec.close()
        self._idx.close()
        os.replace(self._tmp_rec, self.rec_path)
        os.replace(self._tmp_idx, self.idx_path)

    def abort(self) -> None:
        """Close and delete the partial output."""
        self._closed = True
        self._rec.close()
        self._idx.close()
        for p in (self._tmp_rec, self._tmp_idx):
            p.unlink(missing_ok=True)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_insightface_rec(
    prefix: str | os.PathLike,
    samples: Iterable[tuple[bytes, int]],
    num_samples: int | None = None,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Write ``(jpeg_bytes, label)`` samples as an InsightFace ``PREFIX.rec``/``PREFIX.idx`` pair.

    Samples of one identity must be consecutive and labels must be ``0..C-1``. Record 0 is the header
    ``labels = (N + 1, N + 1 + C)``; records ``1..N`` hold the images; records ``N+1..N+C`` hold each
    identity's image range ``[start, end)``.
    """
    prefix = Path(prefix)
    rec_path, idx_path = prefix.with_suffix(".rec"), prefix.with_suffix(".idx")
    ranges: dict[int, list[int]] = {}
    with RecordWriter(rec_path, idx_path) as writer:
        # Placeholder header: its size is fixed (flag=2), rewritten in place at the end.
        writer.write(0, pack_payload(IRHeader(2, (0.0, 0.0))))
        it = samples
        if progress:
            from tqdm import tqdm

            it = tqdm(samples, total=num_samples, desc="pack", unit="img")
        n = 0
        last = None
        for data, label in it:
            n += 1
            label = int(label)
            if label != last and label in ranges:
                raise InputError(f"samples of identity {label} are not consecutive (record {n})")
            last = label
            ranges.setdefault(label, [n, n])[1] = n + 1
            writer.write(n, pack_payload(IRHeader(0, (float(label),), n, 0), data))
        labels_sorted = sorted(ranges)
        if labels_sorted != list(range(len(labels_sorted))):
            raise InputError("labels must be the consecutive integers 0..C-1")
        for c in labels_sorted:
            start, end = ranges[c]
            writer.write(n + 1 + c, pack_payload(IRHeader(2, (float(start), float(end)), n + 1 + c, 0)))
        header = encode_record(pack_payload(IRHeader(2, (float(n + 1), float(n + 1 + len(ranges))))))
        placeholder = encode_record(pack_payload(IRHeader(2, (0.0, 0.0))))
        if len(header) != len(placeholder):  # pragma: no cover - magic word inside two float labels
            raise InputError("cannot rewrite the RecordIO header record in place")
        writer._rec.flush()
        writer._rec.seek(0)
        writer._rec.write(header)
        writer._rec.seek(0, os.SEEK_END)
    return rec_path, idx_path


def image_index_range(reader: RecordReader) -> tuple[Sequence[int], int | None]:
    """Indices of the image records and the number of identities declared by record 0.

    Follows insightface: when record 0's header has ``flag > 0`` its first label ``a`` says images are
    ``[1, a)`` and, when a second label ``b`` is present, identities ``b - a``; otherwise every record
    in the index is an image.
    """
    keys = reader.keys()
    if 0 in reader.offsets:
        try:
            header = reader.read_header(0)
        except CorruptRecordError:
            header = None
        if header is not None and header.flag > 0:
            end = int(header.label[0])
            n_ids = int(header.label[1]) - end if len(header.label) > 1 else None
            images = [i for i in range(1, end) if i in reader.offsets]
            return images, (n_ids if n_ids and n_ids > 0 else None)
    return keys, None
