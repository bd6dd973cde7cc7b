"""OpenVINO's compiled models kept on disk: imported by the next process, checked against their SHA-256 first."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from arcface.runtime import ov_cache  # noqa: E402
from arcface.runtime.ov_session import OpenVinoSession  # noqa: E402


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ARCFACE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "openvino"


def _crops(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, 3, 112, 112)).astype(np.float32)


def _embed(sess: OpenVinoSession) -> np.ndarray:
    return sess.run(None, {sess.get_inputs()[0].name: _crops()})[0]


def test_a_second_session_imports_the_compiled_models_without_reading_the_file(cache: Path, vectron_dir: Path) -> None:
    rec_path, det_path = vectron_dir / "w600k_mbf.onnx", vectron_dir / "scrfd_500m_bnkps.onnx"
    first = OpenVinoSession(rec_path, threads=2)
    assert first.origins == {None: "compiled"}
    det = OpenVinoSession(det_path, threads=2)
    canvas = {det.get_inputs()[0].name: np.random.default_rng(1).uniform(-1, 1, (1, 3, 160, 160)).astype(np.float32)}
    det_out = det.run(None, canvas)
    assert det.origins == {(3, 160, 160): "compiled"}
    assert len(list(cache.glob("*.blob"))) == 2 and len(list(cache.glob("*.ports"))) == 2

    again = OpenVinoSession(rec_path, threads=2)
    assert again.origins == {None: "disk cache"} and again._model is None  # the ONNX file was never parsed
    assert [(a.name, a.shape) for a in again.get_inputs()] == [(a.name, a.shape) for a in first.get_inputs()]
    assert [o.name for o in again.get_outputs()] == [o.name for o in first.get_outputs()]
    np.testing.assert_array_equal(_embed(again), _embed(first))
    det2 = OpenVinoSession(det_path, threads=2)
    for a, b in zip(det2.run(None, canvas), det_out):
        np.testing.assert_array_equal(a, b)
    assert det2.origins == {(3, 160, 160): "disk cache"}
    # another setting is another entry: compiled, not mixed up with the first
    other = OpenVinoSession(rec_path, threads=1)
    assert other.origins == {None: "compiled"} and len(list(cache.glob("*.blob"))) == 3


def _flip_middle(p: Path) -> None:  # what OpenVINO's own CACHE_DIR imported without noticing (cosine 0.07)
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = bytes(b ^ 0xFF for b in data[mid : mid + 4000])
    p.write_bytes(bytes(data))


DAMAGE = {
    "bytes flipped in the middle": _flip_middle,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:1000]),
    "another header": lambda p: p.write_bytes(b"#!/bin/sh\n" + p.read_bytes().partition(b"\n")[2]),
    "digest forged for other bytes": lambda p: p.write_bytes(
        p.read_bytes().partition(b"\n")[0] + b"\n" + os.urandom(5000)
    ),
    "empty": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_refused_deleted_and_compiled_again(
    damage: str, cache: Path, vectron_dir: Path, caplog
) -> None:
    rec_path = vectron_dir / "w600k_mbf.onnx"
    reference = _embed(OpenVinoSession(rec_path, threads=2, disk_cache=False))
    OpenVinoSession(rec_path, threads=2)  # fills the cache
    for entry in [*cache.glob("*.blob"), *cache.glob("*.ports")]:
        entry.chmod(0o600)
        DAMAGE[damage](entry)
    with caplog.at_level(logging.WARNING, logger="arcface.runtime.ov_cache"):
        sess = OpenVinoSession(rec_path, threads=2)
    assert sess.origins == {None: "compiled"}
    np.testing.assert_array_equal(_embed(sess), reference)  # no damaged weights ran
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "ignored and deleted" in warned and str(cache) in warned, warned
    # the entries were written again, whole: the next session imports them
    fresh = OpenVinoSession(rec_path, threads=2)
    assert fresh.origins == {None: "disk cache"} and fresh._model is None
    np.testing.assert_array_equal(_embed(fresh), reference)


def test_an_unwritable_cache_only_costs_the_compile(tmp_path: Path, vectron_dir: Path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("ARCFACE_CACHE_DIR", str(blocker))
    rec_path = vectron_dir / "w600k_mbf.onnx"
    sess = OpenVinoSession(rec_path, threads=2)
    assert sess.origins == {None: "compiled"}
    np.testing.assert_array_equal(_embed(sess), _embed(OpenVinoSession(rec_path, threads=2, disk_cache=False)))
    assert blocker.read_text().startswith("a file")


def test_the_key_follows_the_file_contents_size_and_settings(tmp_path: Path, vectron_dir: Path) -> None:
    src = vectron_dir / "w600k_mbf.onnx"
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(src.read_bytes())
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
    key = ov_cache.entry_key(src, None, cfg)
    assert ov_cache.entry_key(copy, None, cfg) == key  # same bytes elsewhere: the same compiled model
    assert ov_cache.entry_key(src, (3, 112, 112), cfg) != key
    assert ov_cache.entry_key(src, None, {**cfg, "INFERENCE_PRECISION_HINT": "bf16"}) != key
    with open(copy, "ab") as f:
        f.write(b"\0")
    assert ov_cache.entry_key(copy, None, cfg) != key


def test_prune_deletes_the_least_recently_used_entries_first(tmp_path: Path) -> None:
    for i in range(5):
        p = tmp_path / f"{i}.blob"
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "keep.txt").write_bytes(b"y" * 5000)  # not an entry: never touched
    ov_cache.prune(tmp_path, max_bytes=2500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.blob", "4.blob", "keep.txt"]


def test_pixels_converted_inside_the_model_equal_the_spec_preprocessing(cache: Path, vectron_dir: Path) -> None:
    """The detector's session takes the uint8 canvas and converts it in the compiled model: same outputs as the
    float tensor of ModelSpec.preprocess (measured bit-identical for SCRFD's 1/128), for every canvas size."""
    from arcface.errors import ModelError
    from arcface.runtime.ov_session import pixel_input
    from arcface.runtime.sessions import get_session
    from arcface.spec import SCRFD_DETECTION, ModelSpec

    det_path = vectron_dir / "scrfd_500m_bnkps.onnx"
    plain = OpenVinoSession(det_path, threads=2, disk_cache=False)
    pixels = OpenVinoSession(det_path, threads=2, pixels=SCRFD_DETECTION)
    assert pixels.takes_pixels and not plain.takes_pixels
    name = plain.get_inputs()[0].name
    rng = np.random.default_rng(2)
    for side in (160, 320):
        canvas = rng.integers(0, 256, (1, side, side, 3), dtype=np.uint8)
        want = plain.run(None, {name: SCRFD_DETECTION.preprocess(canvas)})
        got = pixels.run(None, {name: canvas})
        for w, g in zip(want, got):
            np.testing.assert_allclose(g, w, atol=1e-5)
    assert set(pixels._compiled) == {(3, 160, 160), (3, 320, 320)}  # keyed by the model's (C, H, W)
    # a BGR model with per-channel constants: the channels are swapped before the model's own mean and std
    bgr = ModelSpec(color_order="BGR", mean=(104.0, 117.0, 123.0), std=(58.0, 57.0, 59.0))
    rec_path = vectron_dir / "w600k_mbf.onnx"
    rec_plain = OpenVinoSession(rec_path, threads=2, disk_cache=False)
    rec_pixels = OpenVinoSession(rec_path, threads=2, pixels=bgr)
    crops = rng.integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    rname = rec_plain.get_inputs()[0].name
    want = rec_plain.run(None, {rname: bgr.preprocess(crops)})[0]
    got = rec_pixels.run(None, {rname: crops})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    rgb = ModelSpec(mean=(104.0, 117.0, 123.0), std=(58.0, 57.0, 59.0))  # the same constants, channels unswapped
    assert not np.allclose(got, rec_plain.run(None, {rname: rgb.preprocess(crops)})[0], atol=1e-2)
    # the converting models are cache entries of their own, apart from the plain ones
    assert OpenVinoSession(rec_path, threads=2).origins == {None: "compiled"}
    assert OpenVinoSession(rec_path, threads=2, pixels=bgr).origins == {None: "disk cache"}
    # what cannot be converted this way is refused by the session, and get_session falls back to float input
    raw = ModelSpec(input_dtype="uint8", mean=(0.0,) * 3, std=(1.0,) * 3)
    assert not pixel_input(raw) and not pixel_input(ModelSpec(layout="NHWC")) and pixel_input(SCRFD_DETECTION)
    with pytest.raises(ModelError, match="float32 NCHW"):
        OpenVinoSession(rec_path, threads=2, pixels=raw)
    assert not get_session(rec_path, 2, runtime="openvino", pixels=raw).takes_pixels
    assert not hasattr(get_session(rec_path, 2, runtime="onnxruntime", pixels=SCRFD_DETECTION), "takes_pixels")


def test_the_openvino_detector_feeds_its_canvases_as_pixels(wheel_images) -> None:
    from arcface.detect.scrfd import SCRFD
    from arcface.models.packs import builtin_dir

    ov_det = SCRFD(builtin_dir() / "scrfd_500m_bnkps.onnx", runtime="openvino")
    ort_det = SCRFD(builtin_dir() / "scrfd_500m_bnkps.onnx")
    assert ov_det._pixels and not ort_det._pixels
    canvas = np.zeros((1, 64, 64, 3), np.uint8)
    assert ov_det.model_input(canvas) is canvas and ort_det.model_input(canvas).dtype == np.float32
    for img in wheel_images.values():  # the same faces as ONNX Runtime, landmarks within a hundredth of a pixel
        a, b = ov_det.detect(img), ort_det.detect(img)
        assert len(a) == len(b) and np.abs(a.kps - b.kps).max() < 0.01


def test_an_entry_another_user_could_have_planted_is_not_used(cache: Path, vectron_dir: Path, caplog) -> None:
    """A digest catches damage, not a planted file (anyone can compute one): an entry that every user may write,
    or that another user owns, is not imported; the model is compiled, and the entry rewritten as this user's."""
    rec_path = vectron_dir / "w600k_mbf.onnx"
    reference = _embed(OpenVinoSession(rec_path, threads=2, disk_cache=False))
    OpenVinoSession(rec_path, threads=2)
    (blob,) = cache.glob("*.blob")
    assert blob.stat().st_mode & 0o077 == 0  # written private to this user
    planted = [("writable by every user", lambda p: p.chmod(0o666))]
    if hasattr(os, "getuid") and os.getuid() == 0:  # root can hand the file to another user, as an attacker's
        planted.append(("owned by user id 4242", lambda p: os.chown(p, 4242, -1)))
    for why, plant in planted:
        for entry in [*cache.glob("*.blob"), *cache.glob("*.ports")]:
            plant(entry)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="arcface.runtime.ov_cache"):
            sess = OpenVinoSession(rec_path, threads=2)
        assert sess.origins == {None: "compiled"} and sess._model is not None  # neither blob nor ports trusted
        assert why in caplog.text and "not used" in caplog.text
        np.testing.assert_array_equal(_embed(sess), reference)
        st = blob.stat()  # replaced by this process's own, private entry
        assert st.st_uid == os.getuid() and st.st_mode & 0o077 == 0
        assert OpenVinoSession(rec_path, threads=2).origins == {None: "disk cache"}


def test_an_entry_larger_than_the_cache_is_never_read(cache: Path, vectron_dir: Path, monkeypatch, caplog) -> None:
    """A file under an entry's name that is larger than the whole cache may hold (a sparse 1 GiB file here, as a
    hostile or runaway writer could leave) is dropped on its size alone, without reading it into memory."""
    rec_path = vectron_dir / "w600k_mbf.onnx"
    OpenVinoSession(rec_path, threads=2)
    (blob,) = cache.glob("*.blob")
    with open(blob, "r+b") as f:
        f.truncate(1 << 30)  # sparse: costs no disk
    read = []
    real_open = open

    def watching_open(p, mode="r", *a, **k):
        f = real_open(p, mode, *a, **k)
        if Path(p) == blob:
            read.append(f)
            f.read = lambda *x: pytest.fail("the oversized entry was read")  # type: ignore[method-assign]
        return f

    monkeypatch.setattr("builtins.open", watching_open)
    with caplog.at_level(logging.WARNING, logger="arcface.runtime.ov_cache"):
        sess = OpenVinoSession(rec_path, threads=2)
    monkeypatch.undo()
    assert read and sess.origins == {None: "compiled"}
    assert "more than the cache's" in caplog.text and str(blob) in caplog.text
    assert blob.stat().st_size < ov_cache.MAX_BYTES  # dropped, then written again whole by the compile
