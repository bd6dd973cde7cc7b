"""The model registry: every registered model loads and runs on a real face; one parser; one pack.json schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from arcface.errors import InputError, ModelError
from arcface.models import (
    ModelRef,
    PackFile,
    card_for_file,
    detector_family,
    get_model,
    model_cards,
    pack_cards,
    parse_model,
    resolve_embedder,
    resolve_pack,
)
from arcface.models.packs import builtin_dir, load_pack, sha256_file, wheel_dir
from arcface.spec import ModelSpec

MODEL_NAMES = sorted(model_cards())


def _find_file(name: str) -> Path | None:
    """The registered model's file on this machine (the wheel, $ARCFACE_HOME or ~/.insightface packs)."""
    import os

    card = get_model(name)
    roots = [builtin_dir(), wheel_dir(card.distribution, card.subdir) if card.distribution else None]
    for env, sub in (("ARCFACE_HOME", ""), ("INSIGHTFACE_HOME", "models")):
        base = os.environ.get(env, "~/.insightface" if env == "INSIGHTFACE_HOME" else "")
        if base:
            root = Path(base).expanduser() / sub
            roots += [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    for root in filter(None, roots):
        for f in card.files:
            if (root / f).is_file():
                return root / f
    return None


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_model_card_is_complete(name: str) -> None:
    card = get_model(name)
    assert card.role in ("detector", "recognizer") and card.files and card.licence and card.source
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in card.sha256)
    assert ModelSpec.from_dict(json.loads(json.dumps(card.spec.to_dict()))) == card.spec  # spec round trip
    assert all(card_for_file(f) is card for f in card.files)
    if card.role == "detector":
        assert detector_family(card.family).name == card.family
    if card.published:
        assert card.published_source and all(0 < v <= 100 for v in card.published.values())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_model_runs_on_a_real_face(name: str, wheel_images, analyzer) -> None:
    """Load the model's file where this machine has it, check its digest, run it on yaoming.jpg's face."""
    path = _find_file(name)
    if path is None:
        pytest.skip(f"{name}: no file on this machine ({', '.join(get_model(name).files)})")
    card = get_model(name)
    if card.sha256:
        assert sha256_file(path) in card.sha256
    image = wheel_images["yaoming.jpg"]
    ref = analyzer.analyze(image, with_crops=True)[0]
    if card.role == "detector":
        det = detector_family(card.family).build(path, card.spec)
        found = det.detect(image)
        eye = float(np.linalg.norm(ref.kps[1] - ref.kps[0]))
        assert len(found) == 1 and np.abs(found.kps[0] - ref.kps).max() < 0.15 * eye
    else:
        from arcface.embed.onnx import OnnxEmbedder

        emb = OnnxEmbedder(path, spec=card.spec).embed(ref.crop[None])
        assert emb.shape == (1, card.spec.embedding_dim) and abs(float(np.linalg.norm(emb)) - 1) < 1e-5
        if path == Path(analyzer.pack.recognizer):
            assert float(emb[0] @ ref.embedding) > 0.9999


@pytest.mark.parametrize("name", sorted(pack_cards()))
def test_every_pack_card_names_registered_models(name: str) -> None:
    card = pack_cards()[name]
    assert card.detector_card.role == "detector" and card.recognizer_card.role == "recognizer"
    assert "non-commercial" in card.licence


def test_parse_model_prefixes_and_inference(tmp_path: Path, vectron_dir: Path) -> None:
    rec = vectron_dir / "w600k_mbf.onnx"
    assert parse_model(str(rec)) == ModelRef("onnx", str(rec))
    assert parse_model("buffalo_sc") == ModelRef("pack", "buffalo_sc")
    assert parse_model(f"pack:{tmp_path}") == ModelRef("pack", str(tmp_path))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert parse_model(str(tmp_path / "run")).kind == "ckpt"
    (tmp_path / "weights.pth").write_bytes(b"x")
    assert parse_model(str(tmp_path / "weights.pth")).kind == "ckpt"
    assert parse_model(f"onnx:{rec}").kind == "onnx"
    with pytest.raises(InputError, match="missing.onnx: model file not found"):
        parse_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(InputError, match="empty model name"):
        parse_model(" ")
    with pytest.raises(InputError, match="a model pack"):
        resolve_pack(str(rec))
    assert resolve_pack("buffalo_sc").recognizer_sha256 in get_model("w600k_mbf").sha256
    assert resolve_embedder(f"onnx:{rec}").dim == 512 and resolve_embedder(None).dim == 512


def test_pack_json_one_schema_round_trip_and_refusals(tmp_path: Path, vectron_dir: Path) -> None:
    import shutil

    shutil.copy(vectron_dir / "scrfd_500m_bnkps.onnx", tmp_path / "det.onnx")
    shutil.copy(vectron_dir / "w600k_mbf.onnx", tmp_path / "rec.onnx")
    pf = PackFile("det.onnx", "rec.onnx", name="mine", licence="research only")
    pf.write(tmp_path)
    assert PackFile.read(tmp_path) == pf
    pack = load_pack(tmp_path)
    assert pack.detector_family == "scrfd" and pack.licence == "research only"
    for bad, match in (
        ({"detector": "det.onnx", "recognizer": "rec.onnx", "recogniser_spec": {}}, "unknown field"),
        ({"detector": "../det.onnx", "recognizer": "rec.onnx"}, "inside the pack folder"),
        ({"detector": "det.onnx", "recognizer": "rec.onnx", "detector_family": "yolo"}, "unknown detector family"),
        ({"detector": "det.onnx", "recognizer": "rec.onnx", "format": 9}, "format 9"),
    ):
        (tmp_path / "pack.json").write_text(json.dumps(bad))
        with pytest.raises(ModelError, match=match):
            load_pack(tmp_path)


def test_unregistered_files_are_reported_unverified_with_an_unknown_licence(tmp_path: Path, vectron_dir) -> None:
    import shutil

    shutil.copy(vectron_dir / "scrfd_500m_bnkps.onnx", tmp_path / "my_detector.onnx")
    shutil.copy(vectron_dir / "w600k_mbf.onnx", tmp_path / "my_recognizer.onnx")
    pack = load_pack(tmp_path)  # found by their graphs: SCRFD outputs, a 112x112 single-output recognizer
    assert pack.detector.name == "my_detector.onnx" and pack.recognizer.name == "my_recognizer.onnx"
    assert not pack.verified and pack.licence.startswith("unknown")
