"""Thresholds files are user data: a bad file is refused naming it, never half-read; the search order holds."""

from __future__ import annotations

import json

import pytest

from arcface.errors import InputError
from arcface.thresholds import ENV, check_threshold, package_thresholds_path, read_thresholds_file, threshold_for

SHA = "ab" * 32


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        ('["a list"]', "holds {'recognizers'"),
        (json.dumps({"recognizers": {SHA: {"threshold": 7}}}), "must be a cosine similarity in \\[-1, 1\\]"),
        (json.dumps({"recognizers": {SHA: {"threshold": float("nan")}}}), "must be a cosine similarity in \\[-1, 1\\]"),
        (json.dumps({"recognizers": {SHA: {"threshold": "0.3"}}}), "must be a cosine in \\[-1, 1\\]"),
    ],
)
def test_a_bad_thresholds_file_is_refused_naming_it(tmp_path, monkeypatch, text, message):
    bad = tmp_path / "mine.json"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError, match=message) as err:
        read_thresholds_file(bad)
    assert str(bad) in str(err.value)
    monkeypatch.setenv(ENV, str(bad))
    with pytest.raises(InputError, match=str(bad)):  # named by the environment: refused, not skipped
        threshold_for(SHA)


def test_search_order_and_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(InputError, match="thresholds file not found"):
        threshold_for(SHA, files=tmp_path / "missing.json")
    assert not threshold_for(SHA).calibrated and threshold_for(None).value == 0.30
    package = json.loads(package_thresholds_path().read_text())["recognizers"]
    sha, entry = next(iter(package.items()))
    assert threshold_for(sha).value == entry["threshold"] and threshold_for(sha).source == "package"
    rec = tmp_path / "model.onnx"
    rec.write_bytes(b"x")
    (tmp_path / "thresholds.json").write_text(json.dumps({"recognizers": {sha: {"threshold": 0.5}}}))
    assert threshold_for(sha, rec).value == 0.5  # beside the recognizer beats the package
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"recognizers": {sha: {"threshold": -0.25}}}))
    assert threshold_for(sha, rec, files=[mine]).value == -0.25  # explicit beats beside
    assert check_threshold(1) == 1.0
    with pytest.raises(InputError, match="what I gave must be"):
        check_threshold(-1.5, "what I gave")


def test_per_engine_thresholds_are_written_and_read_by_engine(tmp_path):
    """calibrate --runtime/--precision: each engine keeps its own threshold; hostile 'engines' tables refused."""
    from arcface.eval.calibration import write_threshold

    f = tmp_path / "t.json"
    write_threshold(f, "ab" * 32, {"threshold": 0.30, "provenance": "ref pairs"})
    write_threshold(f, "ab" * 32, {"threshold": 0.28, "provenance": "bf16 pairs"}, engine="openvino/bf16")
    entry = json.loads(f.read_text())["recognizers"]["ab" * 32]
    assert entry["threshold"] == 0.30 and entry["engine"] == "onnxruntime/f32"
    assert entry["engines"]["openvino/bf16"]["threshold"] == 0.28
    ref, bf16 = threshold_for("ab" * 32, files=f), threshold_for("ab" * 32, files=f, engine="openvino/bf16")
    assert (ref.value, bf16.value, bf16.engine) == (0.30, 0.28, "openvino/bf16")
    assert "bf16 pairs" in bf16.provenance and "WARNING" not in bf16.provenance
    # an engine with no threshold of its own uses the reference's, and is told agreement was not measured
    assert "WARNING" in threshold_for("ab" * 32, files=f, engine="openvino/int8").provenance
    # a file whose only calibration was made with bf16: the reference is warned, bf16 is not
    g = tmp_path / "g.json"
    write_threshold(g, "cd" * 32, {"threshold": 0.25, "provenance": "bf16 only"}, engine="openvino/bf16")
    assert "calibrated with openvino/bf16" in threshold_for("cd" * 32, files=g).provenance
    assert "WARNING" not in threshold_for("cd" * 32, files=g, engine="openvino/bf16").provenance
    for bad, message in (
        ({"threshold": 0.3, "engines": [0.2]}, "'engines' must map"),
        ({"threshold": 0.3, "engines": {"openvino/bf16": {"threshold": 7}}}, "engine openvino/bf16"),
        ({"threshold": 0.3, "engines": {"openvino/bf16": {"threshold": "0.2"}}}, "engine openvino/bf16"),
    ):
        h = tmp_path / "h.json"
        h.write_text(json.dumps({"recognizers": {"ef" * 32: bad}}))
        with pytest.raises(InputError, match=message) as err:
            read_thresholds_file(h)
        assert str(h) in str(err.value)
