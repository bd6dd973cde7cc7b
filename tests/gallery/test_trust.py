"""Galleries under hostile conditions: read-only mounts, a full disk, contract bypasses (trust issue 5, 6, 9)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from arcface.errors import InputError
from arcface.gallery import EmbeddingContract, Gallery
from arcface.spec import ARCFACE_RECOGNITION

D = 32


def unit(seed: int, n: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def read_only_view(src: Path, where: Path) -> Iterator[Path]:
    """``src`` bind-mounted read-only at ``where`` (a real EROFS file system); skips where mounts are refused."""
    where.mkdir()
    if not (_mount(["--bind", str(src), str(where)]) and _mount(["-o", "remount,ro,bind", str(where)])):
        subprocess.run(["umount", str(where)], capture_output=True)
        pytest.skip("cannot bind-mount read-only here (needs root and mount rights)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``where``; skips where mounts are refused."""
    where.mkdir()
    if not _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_read_only_gallery_can_be_listed_and_searched(tmp_path: Path) -> None:
    """Case 5: list and search used to open .lock for writing and fail on a read-only mount."""
    src = tmp_path / "g"
    g = Gallery(src, backend="numpy")
    g.enroll_many({"ada": unit(1), "bob": unit(2)})
    g.close()
    (src / ".lock").unlink()  # e.g. a copy made without the lock file: readers cannot create it there
    with read_only_view(src, tmp_path / "ro") as ro:
        r = Gallery(ro, backend="numpy", create=False)
        assert r.names == ["ada", "bob"]
        assert r.search(unit(1)[0]).identity == "ada"
        r.refresh()
        with pytest.raises(InputError, match="read-only file system"):
            r.enroll("carol", unit(3))
        with pytest.raises(InputError, match="read-only"):
            r.remove("ada")
        r.close()
    assert Gallery(src, backend="numpy").names == ["ada", "bob"]


def test_read_only_gallery_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "g"
    g = Gallery(src, backend="numpy")
    g.enroll_many({"ada": unit(1)})
    g.close()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cli_spawn import spawn_cli

    with read_only_view(src, tmp_path / "ro") as ro:
        code, out, err, _ = spawn_cli(["gallery", "--db", str(ro), "list"])
        assert code == 0 and out.startswith("ada"), err
        code, _, err, _ = spawn_cli(["gallery", "--db", str(ro), "remove", "ada"])
        assert code == 2
        assert "Traceback" not in err and "read-only" in err and err.count("\n") == 1


def test_full_disk_during_enrol_changes_nothing(tmp_path: Path) -> None:
    """Case 9: disk full during enrolment used to end in a traceback; now a clear error and no partial record."""
    with small_disk(tmp_path / "disk", "64k") as disk:
        db = disk / "g"
        g = Gallery(db, backend="numpy")
        g.enroll("small", unit(1))
        before = (db / "journal-000001.jsonl").read_bytes()
        big = unit(2, n=600)  # ~100 kB of base64 in one record: more than the disk holds
        with pytest.raises(InputError, match="disk is full"):
            g.enroll("big", big)
        assert (db / "journal-000001.jsonl").read_bytes() == before  # the partial record was cut off
        assert g.names == ["small"]
        g.enroll("tiny", unit(3))  # the gallery still works once the write fits
        assert Gallery(db, backend="numpy").names == ["small", "tiny"]


def test_enrol_without_a_contract_into_a_model_gallery_is_refused(tmp_path: Path) -> None:
    """Case 6: enrol(name, emb) with no contract, or one lacking digest and spec, used to be accepted."""
    spec = ARCFACE_RECOGNITION.with_(embedding_dim=D)
    model = EmbeddingContract.from_model(spec, sha256="a" * 64, name="pack-a")
    g = Gallery(tmp_path / "g", contract=model, backend="numpy")
    g.enroll("x", unit(1))
    g.close()
    other = Gallery(tmp_path / "g", backend="numpy")  # opened without saying which model makes its embeddings
    with pytest.raises(InputError, match="without a model contract"):
        other.enroll("y", unit(2))
    with pytest.raises(InputError, match="no SHA-256"):
        other.enroll("y", unit(2), contract=EmbeddingContract(dim=D))
    with pytest.raises(InputError, match="no SHA-256"):
        other.enroll("y", unit(2), contract=EmbeddingContract(dim=D, input_spec=spec.to_dict()))
    other.enroll("y", unit(2), contract=model)  # the same model, stated: accepted
    assert Gallery(tmp_path / "g", backend="numpy").names == ["x", "y"]
