"""RecordIO: byte layout, round trips, continuation records, corrupt records, fork safety."""

from __future__ import annotations

import pickle
import struct

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from arcface.train.data import RecordIODataset  # noqa: E402
from arcface.train.recordio import (  # noqa: E402
    MAGIC,
    IRHeader,
    RecordReader,
    encode_record,
    image_index_range,
    pack_payload,
    unpack_payload,
    write_insightface_rec,
)


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (112, 112), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def test_record_layout_matches_the_format():
    payload = b"abcde"  # 5 bytes -> 3 bytes of padding
    rec = encode_record(payload)
    magic, lrec = struct.unpack_from("<II", rec)
    assert magic == 0xCED7230A == MAGIC
    assert lrec >> 29 == 0 and lrec & ((1 << 29) - 1) == 5
    assert rec[8:13] == payload and rec[13:] == b"\0\0\0" and len(rec) == 16


def test_irheader_round_trip_scalar_and_vector():
    h, data = unpack_payload(pack_payload(IRHeader(0, (7.0,), 3, 4), b"JPEG"))
    assert (h.flag, h.label, h.id, h.id2, data) == (0, (7.0,), 3, 4, b"JPEG")
    raw = pack_payload(IRHeader(2, (1.0, 9.0)), b"xy")
    assert struct.unpack_from("<IfQQ", raw)[0] == 2 and len(raw) == 24 + 8 + 2
    h, data = unpack_payload(raw)
    assert h.flag == 2 and h.label == (1.0, 9.0) and data == b"xy"


def test_magic_inside_payload_becomes_continuation_records(tmp_path):
    m = struct.pack("<I", MAGIC)
    # Aligned occurrences split the record (at offsets 4 and 20); the unaligned one (offset 27) does not.
    payload = b"\x01\x02\x03\x04" + m + b"twelve-bytes" + m + b"abc" + m + b"z"
    rec = encode_record(payload)
    flags = []
    pos = 0
    while pos < len(rec):
        magic, lrec = struct.unpack_from("<II", rec, pos)
        assert magic == MAGIC
        n = lrec & ((1 << 29) - 1)
        flags.append(lrec >> 29)
        pos += 8 + n + (-n % 4)
    assert flags == [1, 2, 3]
    (tmp_path / "a.rec").write_bytes(rec)
    (tmp_path / "a.idx").write_text("5\t0\n")
    with RecordReader(tmp_path / "a.rec") as r:
        assert r.read(5) == payload


def test_insightface_round_trip(tmp_path):
    samples = [(_jpeg(i), lab) for i, lab in enumerate([0, 0, 0, 1, 1, 2])]
    rec, idx = write_insightface_rec(tmp_path / "train", samples)
    reader = RecordReader(rec)
    header = reader.read_header(0)
    assert header.flag == 2 and header.label == (7.0, 10.0)  # images [1, 7), identities [7, 10)
    images, n_ids = image_index_range(reader)
    assert list(images) == [1, 2, 3, 4, 5, 6] and n_ids == 3
    for i, (data, lab) in enumerate(samples, start=1):
        h, got = unpack_payload(reader.read(i))
        assert got == data and h.label == (float(lab),)
    assert unpack_payload(reader.read(8))[0].label == (4.0, 6.0)  # identity 1 occupies [4, 6)
    ds = RecordIODataset(tmp_path)  # a folder holding train.rec
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 2] and ds.num_classes == 3 and ds.num_corrupt == 0
    want = cv2.cvtColor(cv2.imdecode(np.frombuffer(samples[3][0], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(ds.load_rgb(3), want)


def test_corrupt_records_are_skipped_and_counted(tmp_path):
    samples = [(_jpeg(i), i // 2) for i in range(6)]
    rec, idx = write_insightface_rec(tmp_path / "train", samples)
    offsets = dict(line.split("\t") for line in idx.read_text().splitlines())
    raw = bytearray(rec.read_bytes())
    o2 = int(offsets["2"])
    raw[o2 : o2 + 4] = b"\0\0\0\0"  # bad magic in record 2
    o5 = int(offsets["5"])
    raw[o5 + 8 + 24 : o5 + 8 + 24 + 40] = b"\0" * 40  # JPEG of record 5 destroyed
    rec.write_bytes(bytes(raw))
    ds = RecordIODataset(rec)
    assert ds.num_corrupt == 1 and len(ds) == 5 and "2" not in ds.keys
    j = ds.keys.index("5")
    img, label = ds[j]  # substitutes the next readable sample instead of crashing
    assert ds.runtime_corrupt == 1
    assert label == int(ds.labels[(j + 1) % len(ds)])
    assert tuple(img.shape) == (3, 112, 112)


def test_reader_is_picklable_and_reopens_lazily(tmp_path):
    rec, _ = write_insightface_rec(tmp_path / "t", [(_jpeg(0), 0), (_jpeg(1), 1)])
    r = RecordReader(rec)
    first = r.read(1)
    clone = pickle.loads(pickle.dumps(r))
    assert clone._fh is None
    assert clone.read(1) == first


def test_dataloader_workers_read_the_same_samples(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    samples = [(_jpeg(i), i // 3) for i in range(12)]
    rec, _ = write_insightface_rec(tmp_path / "train", samples)
    ds = RecordIODataset(rec)
    ds.reader.read(1)  # the parent opened its handle before the fork
    single = torch.stack([ds[i][0] for i in range(len(ds))])
    batches = list(DataLoader(ds, batch_size=4, num_workers=2, shuffle=False))
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), single, rtol=0, atol=0)
    assert torch.cat([b[1] for b in batches]).tolist() == ds.labels.tolist()
