"""runtime="auto": CPU features, the accuracy guard on bf16, the measured choice and its per-machine cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from arcface.errors import InputError, ModelError
from arcface.runtime import choice as choice_mod
from arcface.runtime.choice import BARS, SPEEDUP_NEEDED, agreement_allows, choose_engine, engine_cache_path
from arcface.runtime.cpu import CpuInfo, parse_cpuinfo

# First-processor entries of /proc/cpuinfo as three kinds of machine report them (flags shortened).
INTEL_AVX2 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu sse avx512f amx_bf16
"""
INTEL_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
AMD_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16
"""


def test_cpuinfo_parsing_reads_the_first_processor_only() -> None:
    avx2, amx, amd = parse_cpuinfo(INTEL_AVX2, 2), parse_cpuinfo(INTEL_AMX, 2), parse_cpuinfo(AMD_BF16, 2)
    assert (avx2.isa, avx2.bf16, avx2.vendor) == ("avx2", False, "GenuineIntel")  # the 2nd entry is not read
    assert avx2.features == {"avx2", "fma"}
    assert (amx.isa, amx.bf16) == ("amx", True) and {"amx_int8", "avx512_fp16"} <= amx.features
    assert (amd.isa, amd.bf16, amd.model) == ("avx512_bf16", True, "AMD EPYC 9654 96-Core Processor")
    assert parse_cpuinfo("", 1).isa == "baseline"
    # timings are only reused on a machine with the same CPU, cores and features
    assert len({avx2.key(), amx.key(), amd.key(), parse_cpuinfo(AMD_BF16, 4).key()}) == 4
    assert amd.key() == parse_cpuinfo(AMD_BF16, 2).key()
    assert "avx512_bf16" in amd.describe() and "2 cores" in amd.describe()


def test_the_accuracy_guard_applies_the_issue_bars() -> None:
    assert BARS["bf16"] == {"cosine_min": 0.999, "changed_max": 0.0005}
    assert agreement_allows(None, "f32")[0]
    ok, why = agreement_allows(None, "bf16")
    assert not ok and "not measured" in why
    ok, why = agreement_allows({"cosine_min": 0.99884, "decisions_changed": 0, "pairs": 81708}, "bf16")
    assert not ok and "0.99884" in why
    ok, why = agreement_allows({"cosine_min": 0.9995, "decisions_changed": 40, "pairs": 81708}, "bf16")
    assert ok, why  # 0.049% of decisions changed: just inside 0.05%
    ok, why = agreement_allows({"cosine_min": 0.9995, "decisions_changed": 41, "pairs": 81708}, "bf16")
    assert not ok and "0.0502%" in why
    assert not agreement_allows({"cosine_min": 0.9995}, "bf16")[0]  # incomplete record
    assert agreement_allows({"cosine_min": 0.991, "decisions_changed": 0, "pairs": 10}, "int8")[0]


@pytest.fixture()
def models(vectron_dir: Path) -> tuple[Path, Path]:
    return vectron_dir / "w600k_mbf.onnx", vectron_dir / "scrfd_500m_bnkps.onnx"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCFACE_CACHE_DIR", str(tmp_path / "cache"))
    return engine_cache_path()


def fake_timings(monkeypatch: pytest.MonkeyPatch, ms: dict[str, float]) -> list[tuple[str, tuple]]:
    """Replace the micro-benchmark by fixed medians; returns the log of what was 'measured'."""
    calls: list[tuple[str, tuple]] = []

    def timer(path: Path, role: str, engines: list[str], threads: int, rounds: int = 7) -> dict:
        calls.append((role, tuple(engines)))
        return {e: [ms[e]] * 3 for e in engines}

    monkeypatch.setattr(choice_mod, "time_engines", timer)
    return calls


def test_reference_is_kept_unless_another_engine_is_clearly_faster(models, cache, monkeypatch) -> None:
    monkeypatch.setattr("arcface.runtime.sessions.openvino_available", lambda: True)
    rec, det = models
    fake_timings(monkeypatch, {"onnxruntime/f32": 9.0, "openvino/f32": 10.0})
    c = choose_engine(rec, det, "auto", "f32", threads=2, use_cache=False)
    assert c.engine == "onnxruntime/f32" and c.reason.startswith("fastest measured")
    fake_timings(monkeypatch, {"onnxruntime/f32": 10.0, "openvino/f32": 9.6})
    c = choose_engine(rec, det, "auto", "f32", threads=2, use_cache=False)
    assert SPEEDUP_NEEDED > 10.0 / 9.6
    assert c.engine == "onnxruntime/f32" and "only 1.04x faster" in c.reason
    fake_timings(monkeypatch, {"onnxruntime/f32": 10.0, "openvino/f32": 5.0})
    c = choose_engine(rec, det, "auto", "f32", threads=2, use_cache=False)
    assert c.engine == "openvino/f32" and c.reason.startswith("2.00x faster")
    assert c.timings_ms == {"onnxruntime/f32": 20.0, "openvino/f32": 10.0}  # detector + recognizer


def test_bf16_is_chosen_automatically_only_with_a_passing_agreement(models, cache, monkeypatch) -> None:
    monkeypatch.setattr("arcface.runtime.sessions.openvino_available", lambda: True)
    monkeypatch.setattr(choice_mod, "cpu_info", lambda: CpuInfo("test CPU", "x", 2, frozenset({"amx_bf16"})))
    rec, det = models
    ms = {"onnxruntime/f32": 10.0, "openvino/f32": 8.0, "openvino/bf16": 3.0}
    fake_timings(monkeypatch, ms)
    c = choose_engine(rec, det, threads=2, use_cache=False)
    assert c.engine == "openvino/f32" and "not measured" in c.excluded["openvino/bf16"]
    failing = {"openvino/bf16": {"cosine_min": 0.99884, "decisions_changed": 8, "pairs": 81708}}
    c = choose_engine(rec, det, threads=2, agreement=failing, use_cache=False)
    assert c.engine == "openvino/f32" and "0.99884" in c.excluded["openvino/bf16"]
    passing = {"openvino/bf16": {"cosine_min": 0.9993, "decisions_changed": 8, "pairs": 81708}}
    c = choose_engine(rec, det, threads=2, agreement=passing, use_cache=False)
    assert c.engine == "openvino/bf16" and "openvino/bf16" not in c.excluded
    # asked for by name, bf16 is the user's call: no record needed, nothing measured
    calls = fake_timings(monkeypatch, ms)
    c = choose_engine(rec, det, "openvino", "bf16", threads=2, use_cache=False)
    assert c.engine == "openvino/bf16" and c.reason == "chosen by name" and calls == []
    # a CPU without bf16 units never gets it
    monkeypatch.setattr(choice_mod, "cpu_info", lambda: CpuInfo("old CPU", "x", 2, frozenset({"avx2"})))
    c = choose_engine(rec, det, threads=2, agreement=passing, use_cache=False)
    assert "no bf16 units" in c.excluded["openvino/bf16"]


def test_without_openvino_auto_means_onnxruntime_and_measures_nothing(models, cache, monkeypatch) -> None:
    monkeypatch.setattr("arcface.runtime.sessions.openvino_available", lambda: False)
    calls = fake_timings(monkeypatch, {})
    c = choose_engine(*models)
    assert c.engine == "onnxruntime/f32" and calls == [] and not cache.exists()
    assert c.reason.count("openvino is not installed") == 1  # said once for both OpenVINO engines
    with pytest.raises(ModelError, match="openvino is not installed"):
        choose_engine(*models, runtime="openvino", precision="auto")


def test_timings_are_cached_per_machine_and_model_digest(models, cache, monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setattr("arcface.runtime.sessions.openvino_available", lambda: True)
    rec, det = models
    calls = fake_timings(monkeypatch, {"onnxruntime/f32": 10.0, "openvino/f32": 4.0})
    first = choose_engine(rec, det, "auto", "f32", threads=2)
    assert not first.cached and [c[0] for c in calls] == ["recognizer", "detector"]
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 2 and all(e["ms"]["openvino/f32"] == 4.0 for e in entries.values())
    again = choose_engine(rec, det, "auto", "f32", threads=2)
    assert again.cached and again.engine == first.engine and len(calls) == 2  # nothing measured again
    # another model file (other bytes, so another digest) is measured; the cached one is not
    other = tmp_path / "other.onnx"
    other.write_bytes(rec.read_bytes() + b"\0")
    choose_engine(other, det, "auto", "f32", threads=2)
    assert [c[0] for c in calls] == ["recognizer", "detector", "recognizer"]
    # other thread counts time differently: measured again
    choose_engine(rec, det, "auto", "f32", threads=1)
    assert len(calls) == 5
    # a corrupt cache is measured over and rewritten, with a warning naming the file
    cache.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="arcface.runtime"):
        c = choose_engine(rec, det, "auto", "f32", threads=2)
    assert (
        not c.cached
        and str(cache) in caplog.text
        and json.loads(cache.read_text())["version"] == choice_mod.CACHE_VERSION
    )


def test_unwritable_cache_does_not_stop_inference(models, tmp_path, monkeypatch, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ARCFACE_CACHE_DIR", str(blocker / "sub"))  # a folder under a file cannot be made
    monkeypatch.setattr("arcface.runtime.sessions.openvino_available", lambda: True)
    fake_timings(monkeypatch, {"onnxruntime/f32": 10.0, "openvino/f32": 4.0})
    with caplog.at_level(logging.WARNING, logger="arcface.runtime"):
        assert choose_engine(*models, "auto", "f32", threads=2).engine == "openvino/f32"
    assert "cannot store engine timings" in caplog.text


def test_real_micro_benchmark_and_analyzer_report(vectron_dir: Path, cache) -> None:
    """The real measurement (no fakes): every installed f32 engine timed; the analyzer reports its choice."""
    from arcface import FaceAnalyzer
    from arcface.runtime import openvino_available

    fa = FaceAnalyzer(runtime="auto", precision="f32")
    assert fa.engine.engine in ("onnxruntime/f32", "openvino/f32")
    expected = {"onnxruntime/f32", "openvino/f32"} if openvino_available() else set()
    assert set(fa.engine.timings_ms) == expected
    assert all(ms > 0 for ms in fa.engine.timings_ms.values())
    assert fa.threshold.engine == fa.engine.engine and fa.threshold.calibrated
    with pytest.raises(InputError, match="runtime must be one of"):
        FaceAnalyzer(runtime="tensorrt")


def test_threshold_names_the_engine_and_its_agreement(tmp_path: Path) -> None:
    from arcface.models.packs import sha256_file
    from arcface.thresholds import threshold_for

    rec = tmp_path / "rec.onnx"
    rec.write_bytes(b"model")
    sha = sha256_file(rec)
    record = {"cosine_min": 0.9993, "decisions_changed": 3, "pairs": 1000}
    entry = {"threshold": 0.3, "far": 1e-3, "provenance": "mine", "agreement": {"openvino/bf16": record}}
    (tmp_path / "thresholds.json").write_text(json.dumps({"recognizers": {sha: entry}}))
    ref = threshold_for(sha, rec)
    assert ref.engine == "onnxruntime/f32" and ref.agreement is None and "used with" not in ref.provenance
    bf16 = threshold_for(sha, rec, engine="openvino/bf16")
    assert bf16.value == 0.3 and bf16.agreement == record
    assert "used with openvino/bf16: 3 of 1000 decisions changed" in bf16.provenance
    f32 = threshold_for(sha, rec, engine="openvino/f32")
    assert "same arithmetic" in f32.provenance
    entry.pop("agreement")
    (tmp_path / "thresholds.json").write_text(json.dumps({"recognizers": {sha: entry}}))
    assert "WARNING" in threshold_for(sha, rec, engine="openvino/bf16").provenance


def test_models_list_shows_the_cpu_and_the_cached_choice(vectron_dir: Path) -> None:
    """`arcface models list` (a separate process) reports the choice the library makes from the same cache."""
    from arcface import FaceAnalyzer
    from arcface.runtime import cpu_info
    from cli_spawn import spawn_cli

    rc, out, err, _ = spawn_cli(["models", "list", "--json"])
    assert rc == 0, err
    data = json.loads(out)
    assert data["cpu"] == cpu_info().describe()
    engine = FaceAnalyzer(runtime="auto", precision="auto").engine
    assert engine.cached  # measured by the CLI process, or earlier in this test session
    assert data["engine"]["pack"] == "buffalo_sc"
    assert {k: data["engine"][k] for k in ("runtime", "precision", "reason")} == {
        "runtime": engine.runtime,
        "precision": engine.precision,
        "reason": engine.reason,
    }
    # each model's engine: the detector stays f32 whatever the precision (bf16 and int8 apply to the recognizer)
    assert data["engine"]["roles"] == {"detector": f"{engine.runtime}/f32", "recognizer": engine.engine}
    rc, text, err, _ = spawn_cli(["models", "list"])
    assert rc == 0 and f"engine for the default pack (buffalo_sc): {engine.engine}" in text
    assert "why:" in text and f"detector {engine.runtime}/f32, recognizer {engine.engine}" in text
    assert data["few_photos"] == {"max_photos": 2, "runtime": "onnxruntime"}
    if engine.runtime == "openvino":  # the compiled models the CLI process stored, counted where they live
        from arcface.runtime import ov_cache

        listed = data["openvino_cache"]
        assert listed["folder"] == str(ov_cache.cache_folder()) and listed["entries"] >= 2, listed
        assert listed["bytes"] == sum(p.stat().st_size for p in ov_cache.cache_folder().iterdir() if p.is_file())
        assert "a command on 2 photos or fewer (verify A B, detect) runs on onnxruntime" in text
        assert f"OpenVINO compiled models: {listed['folder']} (" in text


def test_int8_is_an_engine_of_its_own_guarded_like_bf16(vectron_dir: Path, cache, monkeypatch) -> None:
    """``precision="int8"``: the recognizer's matrix products quantized once (cached under its digest), the detector
    kept in f32; chosen by name it runs and stays close to f32; automatically it needs a passing agreement (the
    package's measured one passes: cosine min 0.9997, 5 of 81,708 decisions changed) and then competes on speed;
    without onnx it is excluded with the reason."""
    from arcface.pipeline import FaceAnalyzer
    from arcface.runtime.int8 import int8_available, int8_cache_dir
    from arcface.thresholds import agreement_for

    if not int8_available():
        pytest.skip("onnx is not installed")
    fa = FaceAnalyzer(runtime="onnxruntime", precision="int8")
    assert fa.engine.engine == "onnxruntime/int8" and fa.engine.reason == "chosen by name"
    quantized = list(int8_cache_dir().glob("*-w600k_mbf-int8.onnx"))
    assert len(quantized) == 1 and fa.embedder.session._model_path == str(quantized[0])
    assert fa.detector.session._model_path == str(vectron_dir / "scrfd_500m_bnkps.onnx")  # f32 detector
    stamp = quantized[0].stat().st_mtime_ns
    FaceAnalyzer(runtime="onnxruntime", precision="int8")  # the cached copy is reused, not quantized again
    assert quantized[0].stat().st_mtime_ns == stamp
    ref = FaceAnalyzer(runtime="onnxruntime", precision="f32")
    a, b = fa.analyze(vectron_dir / "gdp.jpg"), ref.analyze(vectron_dir / "gdp.jpg")
    assert len(a) == len(b) == 5
    cos = [float(x.embedding @ y.embedding) for x, y in zip(a, b, strict=True)]
    assert 0.999 < min(cos) and max(cos) < 0.999999  # quantized: very close, not identical
    record = agreement_for(ref.pack.recognizer_sha256)["onnxruntime/int8"]
    ok, why = agreement_allows(record, "int8")
    assert ok and "int8 measured" in why
    failing = {"onnxruntime/int8": {**record, "cosine_min": 0.981}}
    monkeypatch.setattr("arcface.runtime.sessions.openvino_available", lambda: False)
    c = choose_engine(vectron_dir / "w600k_mbf.onnx", None, agreement=failing, use_cache=False)
    assert c.engine == "onnxruntime/f32" and "0.98100 < 0.99" in c.excluded["onnxruntime/int8"]
    with pytest.raises(ModelError, match="ONNX Runtime"):
        FaceAnalyzer(runtime="openvino", precision="int8")
    monkeypatch.setattr("arcface.runtime.int8.int8_available", lambda: False)
    c = choose_engine(vectron_dir / "w600k_mbf.onnx", None, use_cache=False)
    assert c.engine == "onnxruntime/f32" and "pip install onnx" in c.excluded["onnxruntime/int8"]


def test_a_damaged_int8_cache_file_is_quantized_again(vectron_dir: Path, cache, wheel_images, caplog) -> None:
    """A cached int8 model that was truncated or overwritten is never run: its digest no longer matches the one
    written beside it, so it is quantized again (a warning names the file) and the analyzer embeds as before."""
    from arcface.pipeline import FaceAnalyzer
    from arcface.runtime import sessions
    from arcface.runtime.int8 import int8_available, int8_model

    if not int8_available():
        pytest.skip("onnx is not installed")
    cached = int8_model(vectron_dir / "w600k_mbf.onnx")
    good = cached.read_bytes()
    before = FaceAnalyzer(runtime="onnxruntime", precision="int8").analyze(wheel_images["gdp.jpg"])
    for damage in (b"\x08\x07not a model" * 100, good[: len(good) // 2]):
        cached.write_bytes(damage)
        sessions._SESSIONS.clear()  # no session opened on the good file may answer for it
        with caplog.at_level("WARNING", logger="arcface.runtime"):
            after = FaceAnalyzer(runtime="onnxruntime", precision="int8").analyze(wheel_images["gdp.jpg"])
        assert str(cached) in caplog.text and "quantizing again" in caplog.text
        caplog.clear()
        assert cached.read_bytes() == good  # the same quantization, made again
        np.testing.assert_array_equal(np.stack([f.embedding for f in after]), np.stack([f.embedding for f in before]))
    cached.with_name(cached.name + ".sha256").unlink()  # a file without its digest is not trusted either
    assert int8_model(vectron_dir / "w600k_mbf.onnx") == cached and cached.with_name(cached.name + ".sha256").is_file()
    cached.chmod(0o666)  # digest intact, but anyone could have written both: not used
    with caplog.at_level("WARNING", logger="arcface.runtime"):
        assert int8_model(vectron_dir / "w600k_mbf.onnx") == cached
    assert "writable by every user" in caplog.text and "quantizing again" in caplog.text
    assert cached.stat().st_mode & 0o002 == 0 and cached.read_bytes() == good


def test_a_command_on_one_or_two_photos_runs_on_onnxruntime(monkeypatch) -> None:
    from arcface.cli import build_parser
    from arcface.cli.common import FEW_PHOTOS, analyzer_from_args

    made: list[dict] = []
    monkeypatch.setattr("arcface.pipeline.FaceAnalyzer", lambda **kw: made.append(kw))

    def runtime(extra: list[str], photos: int | None) -> str:
        analyzer_from_args(build_parser().parse_args(["verify", "a.jpg", "b.jpg", *extra]), photos=photos)
        return made[-1]["runtime"]

    assert FEW_PHOTOS == 2
    assert runtime([], 1) == runtime([], 2) == "onnxruntime"  # start-up outweighs OpenVINO's gain on so few
    assert runtime([], 3) == runtime([], None) == "auto"  # more, or unknown (the service, video): measured choice
    assert runtime(["--precision", "bf16"], 2) == "auto"  # bf16 needs OpenVINO: asked for by name, kept
    assert runtime(["--precision", "int8"], 2) == "onnxruntime"
    assert runtime(["--runtime", "openvino"], 2) == "openvino"  # a named engine is never replaced
