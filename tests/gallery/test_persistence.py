"""Durability of the gallery directory: reopen round trips, torn writes, SIGKILL, concurrent writers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from arcface.errors import InputError
from arcface.gallery import Gallery
from arcface.gallery.store import MANIFEST, GalleryStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from writer_proc import DIM, embedding_for  # noqa: E402


def unit(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def journal_path(db: Path) -> Path:
    return db / json.loads((db / MANIFEST).read_text())["journal"]


def test_reopen_round_trip_after_every_kind_of_change(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy")
    a, b, c = unit(rng, 2), unit(rng, 3), unit(rng, 1)
    g.enroll("alice", a, {"team": "x"})
    g.enroll("bob", b)
    g.enroll("carol", c)
    g.enroll("alice", c, {"age": 3})  # adds an embedding, merges metadata
    g.rename("bob", "robert")
    g.remove("carol")
    g.set_metadata("robert", {"k": [1, 2]})
    g.close()

    h = Gallery(db, backend="numpy")
    assert h.names == ["alice", "robert"]
    np.testing.assert_array_equal(h.embeddings("alice"), np.concatenate([a, c]))
    np.testing.assert_array_equal(h.embeddings("robert"), b)
    assert h.metadata("alice") == {"team": "x", "age": 3}
    assert h.metadata("robert") == {"k": [1, 2]}
    # the same after folding the journal into a snapshot
    h.compact()
    h.close()
    k = Gallery(db, backend="numpy")
    assert k.names == ["alice", "robert"]
    np.testing.assert_array_equal(k.embeddings("alice"), np.concatenate([a, c]))
    assert k.info("robert")["id"] == 1  # ids survive renames and compaction
    assert sorted(p.name for p in db.iterdir() if not p.name.startswith(".")) == [
        "journal-000002.jsonl",
        MANIFEST,
        "snapshot-000002.npz",
    ]


def test_torn_tail_is_ignored_then_truncated_by_next_writer(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy")
    e1, e2, e3 = unit(rng, 1), unit(rng, 1), unit(rng, 1)
    g.enroll("one", e1)
    g.enroll("two", e2)
    g.close()
    journal = journal_path(db)
    full = journal.read_bytes()
    lines = full.splitlines(keepends=True)
    # simulate a writer killed mid-write: half of a third record, no newline
    third = lines[1].replace(b'"two"', b'"xyz"')
    journal.write_bytes(full + third[: len(third) // 2])

    h = Gallery(db, backend="numpy")
    assert h.names == ["one", "two"]
    h.enroll("three", e3)
    h.close()
    assert journal.read_bytes().startswith(full) and journal.read_bytes().count(b"\n") == 3
    k = Gallery(db, backend="numpy")
    assert k.names == ["one", "three", "two"]
    np.testing.assert_array_equal(k.embeddings("three"), e3)


def test_bad_checksum_in_the_middle_is_reported_quarantined_and_never_erased(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(3)
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy")
    for name in ("a", "b", "c"):
        g.enroll(name, unit(rng, 1))
    g.close()
    journal = journal_path(db)
    data = bytearray(journal.read_bytes())
    first_end = data.index(b"\n")
    data[first_end + 30] ^= 0x01  # flip a bit inside record 2 of 3
    damaged_line = bytes(data).splitlines()[1]
    journal.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="arcface.gallery"):
        h = Gallery(db, backend="numpy")
    assert h.names == ["a", "c"]  # the records around the damage still apply
    assert "line 2 is damaged" in caplog.text
    assert [(d.line, d.raw) for d in h._store.damaged] == [(2, damaged_line)]
    h.enroll("d", unit(rng, 1))  # the next writer quarantines the bad line, then compacts
    kept = db / "quarantine" / "journal-000001.line-2.bad"
    assert kept.read_bytes() == damaged_line
    assert "checksum" in (db / "quarantine" / "journal-000001.line-2.bad.txt").read_text()
    assert Gallery(db, backend="numpy").names == ["a", "c", "d"]
    assert Gallery(db, backend="numpy")._store.damaged == []


def test_flipped_byte_in_the_last_record_is_reported_and_kept(tmp_path: Path, caplog) -> None:
    """Case 7 of the trust issue: one flipped byte in the last line used to drop that identity silently."""
    rng = np.random.default_rng(4)
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy")
    g.enroll("first", unit(rng, 1))
    g.enroll("last", unit(rng, 1))
    g.close()
    journal = journal_path(db)
    data = bytearray(journal.read_bytes())
    data[-20] ^= 0x04  # inside the base64 embedding of the last record; the newline stays
    journal.write_bytes(bytes(data))
    last_line = bytes(data).splitlines()[-1]
    with caplog.at_level("WARNING", logger="arcface.gallery"):
        h = Gallery(db, backend="numpy")
    assert "line 2 is damaged" in caplog.text and h.names == ["first"]
    h.enroll("next", unit(rng, 1))  # a later writer must not erase it
    assert (db / "quarantine" / "journal-000001.line-2.bad").read_bytes() == last_line


def test_valid_checksum_with_bad_fields_is_damage_not_a_crash(tmp_path: Path) -> None:
    """Records that pass their CRC but carry wrong fields used to raise raw KeyError/ValueError."""
    from arcface.gallery.store import _encode_line

    rng = np.random.default_rng(5)
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy")
    g.enroll("a", unit(rng, 1))
    g.close()
    journal = journal_path(db)
    bad = [
        {"seq": 2, "time": 0, "ops": [{"op": "remove", "name": "nobody"}]},
        {"seq": 3, "time": 0, "ops": [{"op": "enroll", "name": "x", "id": 5, "emb": {"shape": [1, 3], "f32": "AA"}}]},
        {"seq": 4, "time": 0, "ops": [{"op": "rename", "old": "a"}]},
        {"seq": 5, "time": 0, "ops": [{"nope": 1}]},
        {"seq": 1, "time": 0, "ops": [{"op": "remove", "name": "a"}]},  # replayed old sequence number
    ]
    with open(journal, "ab") as f:
        for payload in bad:
            f.write(_encode_line(payload))
    h = Gallery(db, backend="numpy")
    assert h.names == ["a"]
    assert [d.line for d in h._store.damaged] == [2, 3, 4, 5, 6]
    assert "does not exist" in h._store.damaged[0].reason


def test_missing_manifest_is_rebuilt_not_wiped(tmp_path: Path) -> None:
    """Case 2: deleting manifest.json then enrolling used to rewrite the journal empty (every identity lost)."""
    rng = np.random.default_rng(6)
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy")
    people = {f"p{i}": unit(rng, 1) for i in range(4)}
    for name, e in people.items():
        g.enroll(name, e)
    g.compact()
    g.enroll("after-compaction", unit(rng, 1))
    g.close()
    (db / MANIFEST).unlink()
    k = Gallery(db, backend="numpy")  # what `arcface gallery --db D enroll X photo.jpg` opens
    assert k.names == sorted([*people, "after-compaction"])
    k.enroll("x", unit(rng, 1))
    assert json.loads((db / MANIFEST).read_text())["generation"] == 2
    reopened = Gallery(db, backend="numpy")
    assert reopened.names == sorted([*people, "after-compaction", "x"])
    for name, e in people.items():
        np.testing.assert_array_equal(reopened.embeddings(name), e)
    (db / MANIFEST).write_text("{garbage")  # a damaged manifest is rebuilt the same way
    assert Gallery(db, backend="numpy").names == reopened.names


def test_creation_killed_before_its_manifest_can_be_redone(tmp_path: Path) -> None:
    db = tmp_path / "g"
    db.mkdir()
    (db / "journal-000001.jsonl").write_bytes(b"")  # what a creation leaves before writing the manifest
    (db / ".manifest.json.abc.tmp").write_bytes(b"{")
    g = Gallery(db, backend="numpy")
    g.enroll("a", np.eye(DIM, dtype=np.float32)[0])
    assert Gallery(db, backend="numpy").names == ["a"]


def test_refuses_foreign_directory_and_missing_gallery(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not empty"):
        Gallery(tmp_path)
    with pytest.raises(InputError, match="no gallery"):
        Gallery(tmp_path / "absent", create=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="manifest"):
        Gallery(tmp_path / "bad")


def test_second_handle_sees_changes_after_refresh(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    db = tmp_path / "g"
    writer, reader = Gallery(db, backend="numpy"), Gallery(db, backend="numpy")
    e = unit(rng, 1)
    writer.enroll("x", e)
    assert len(reader) == 0
    reader.refresh()
    assert reader.search(e[0], threshold=0.5).identity == "x"
    writer.compact()  # a new generation: the reader reloads it whole
    writer.rename("x", "y")
    reader.refresh()
    assert reader.names == ["y"] and reader.search(e[0], threshold=0.5).identity == "y"
    # a writer that has not refreshed still sees the other's changes before writing
    reader.enroll("z", e)
    writer.remove("z")
    reader.refresh()
    assert reader.names == ["y"]


def _run_writer(db: Path, prefix: str, start: int, count: int, rows: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, str(HERE / "writer_proc.py"), str(db), prefix, str(start), str(count), str(rows), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_at_random_moments_loses_no_acknowledged_identity(tmp_path: Path) -> None:
    """A writer enrols in a loop (compacting now and then) and is SIGKILLed at random moments."""
    db = tmp_path / "g"
    rows = 48  # ~17 kB per journal line: kills land inside writes too
    rand = random.Random(12345)
    acked: set[int] = set()
    next_i = torn = 0
    for _round in range(10):
        proc = _run_writer(db, "p", next_i, 10_000, rows, "5", "slow")
        lines: list[str] = []
        reader = threading.Thread(target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True)
        reader.start()
        # wait until the writer is up (first ack), then kill it after a random delay
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert lines, f"writer did not start: {proc.stderr.read() if proc.poll() is not None else ''}"
        time.sleep(rand.uniform(0.0, 0.35))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        journal = journal_path(db).read_bytes()
        torn += bool(journal) and not journal.endswith(b"\n")
        acked.update(int(x.split()[1]) for x in lines if x.startswith("ack "))

        g = Gallery(db, backend="numpy", threshold=0.5)  # reopen: must be consistent
        present = {int(n[1:]) for n in g.names}
        assert acked <= present, f"lost acknowledged identities {sorted(acked - present)}"
        # at most the one enrolment in flight may be there without its ack
        assert present == set(range(len(present)))
        assert len(present) <= max(acked) + 2
        for i in sorted(present)[-3:] + sorted(present)[:2]:
            np.testing.assert_array_equal(g.embeddings(f"p{i}"), embedding_for("p", i, rows))
            assert g.metadata(f"p{i}") == {"i": i, "prefix": "p"}
            assert g.search(embedding_for("p", i, rows).mean(axis=0)).identity == f"p{i}"
        next_i = len(present)
        g.close()
        store = GalleryStore(db)  # exactly one generation's files remain after a finished compaction
        assert set(store.files()) <= {p.name for p in db.iterdir()}
    assert len(acked) >= 6
    assert torn >= 1, "no kill landed inside a journal write; the test lost its teeth"


def test_two_writer_processes_do_not_lose_updates(tmp_path: Path) -> None:
    db = tmp_path / "g"
    Gallery(db, backend="numpy").close()
    n = 25
    procs = [_run_writer(db, prefix, 0, n, 2, "0", "shared") for prefix in ("a", "b")]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.count("ack ") == n
    g = Gallery(db, backend="numpy")
    assert len(g) == 2 * n + 1
    for prefix in ("a", "b"):
        for i in range(n):
            np.testing.assert_array_equal(g.embeddings(f"{prefix}{i}"), embedding_for(prefix, i, 2))
    # every one of the 2n read-modify-write appends to the shared identity survived
    shared = g.embeddings("shared")
    assert shared.shape == (2 * n, DIM)
    expected = {embedding_for(p, -i - 1, 1).tobytes() for p in ("a", "b") for i in range(n)}
    assert {row.tobytes() for row in shared} == expected


def test_threads_sharing_one_gallery(tmp_path: Path) -> None:
    db = tmp_path / "g"
    g = Gallery(db, backend="numpy", threshold=0.5)
    errors: list[BaseException] = []

    def work(prefix: str) -> None:
        try:
            for i in range(15):
                e = embedding_for(prefix, i, 1)
                g.enroll(f"{prefix}{i}", e)
                assert g.search(e[0]).identity == f"{prefix}{i}"
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(Gallery(db, backend="numpy")) == 60
