"""``arcface gallery`` and ``arcface cluster`` end to end on real photos (skipped without them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arcface.cli import main
from arcface.cli.gallery import parse_meta
from arcface.errors import InputError
from arcface.gallery import EmbeddingContract, Gallery


def test_parse_meta() -> None:
    assert parse_meta(["a=1", "b=x y", "c=true", "d=[1, 2]", "e="]) == {
        "a": 1,
        "b": "x y",
        "c": True,
        "d": [1, 2],
        "e": "",
    }
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_meta(["novalue"])


@pytest.fixture(scope="module")
def people(shared_data: Path) -> Path:
    root = shared_data / "face_recognition_by_identity"
    if not root.is_dir():
        pytest.skip("face_recognition_by_identity is absent")
    try:
        from arcface.pipeline import FaceAnalyzer

        FaceAnalyzer()
    except Exception as exc:  # noqa: BLE001 - the pipeline is someone else's module; skip if unusable
        pytest.skip(f"inference pipeline unusable: {exc}")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_gallery_cli_round_trip(people: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "db"
    code, out, _ = run(
        capsys,
        "gallery",
        "--db",
        db,
        "enroll",
        "obama",
        people / "obama/obama.jpg",
        people / "obama/obama2.jpg",
        "--meta",
        "role=president",
    )
    assert code == 0 and "2 photo(s)" in out
    assert run(capsys, "gallery", "--db", db, "enroll", "biden", people / "biden/biden.jpg")[0] == 0
    assert run(capsys, "gallery", "--db", db, "enroll", "kit", people / "kit_harington/john1.jpeg")[0] == 0

    code, out, _ = run(capsys, "gallery", "--db", db, "search", people / "obama/obama3.jpg", "--json", "--top-k", "2")
    assert code == 0
    res = json.loads(out)
    assert len(res["faces"]) >= 1
    face = max(res["faces"], key=lambda f: (f["bbox"][2] - f["bbox"][0]) * (f["bbox"][3] - f["bbox"][1]))
    assert len(face["bbox"]) == 4 and len(face["matches"]) == 2
    assert face["identity"] == "obama" and face["matches"][0]["identity"] == "obama"
    assert face["matches"][0]["similarity"] >= res["threshold"] > face["matches"][1]["similarity"]
    assert face["matches"][1]["identity"] == "unknown"

    # a stranger is unknown, with an impossible threshold everyone is
    code, out, _ = run(capsys, "gallery", "--db", db, "search", people / "rose_leslie/img1.jpg", "--json")
    assert all(f["identity"] == "unknown" for f in json.loads(out)["faces"])
    code, out, _ = run(capsys, "gallery", "--db", db, "search", people / "biden/biden2.jpg", "--threshold", "0.99")
    assert code == 0 and "unknown" in out

    assert run(capsys, "gallery", "--db", db, "rename", "kit", "Kit Harington")[0] == 0
    assert run(capsys, "gallery", "--db", db, "remove", "biden")[0] == 0
    code, out, _ = run(capsys, "gallery", "--db", db, "list", "--json")
    listing = json.loads(out)
    assert [i["name"] for i in listing["identities"]] == ["Kit Harington", "obama"]
    assert listing["identities"][1]["metadata"] == {"role": "president"}
    assert listing["contract"]["dim"] == 512 and len(listing["contract"]["model_sha256"]) == 64

    code, _, err = run(capsys, "gallery", "--db", db, "remove", "biden")
    assert code == 2 and "no identity named 'biden'" in err
    # int8 / float16 codes in memory answer as float32 does, scores within the codes' rounding
    probe = people / "obama/obama3.jpg"
    plain = json.loads(run(capsys, "gallery", "--db", db, "search", probe, "--json")[1])
    for storage, tol in (("int8", 4e-3), ("float16", 1e-3)):
        code, out, err = run(capsys, "gallery", "--db", db, "search", probe, "--json", "--storage", storage)
        assert code == 0, err
        for a, b in zip(json.loads(out)["faces"], plain["faces"], strict=True):
            assert a["identity"] == b["identity"]
            assert abs(a["matches"][0]["similarity"] - b["matches"][0]["similarity"]) <= tol
    code, _, err = run(capsys, "gallery", "--db", db, "search", probe, "--storage", "int8", "--backend", "numpy")
    assert code == 2 and "--storage int8 needs the faiss backend" in err
    code, _, err = run(capsys, "gallery", "--db", tmp_path / "nothing", "list")
    assert code == 2 and "no gallery" in err


def test_cli_refuses_a_gallery_of_another_model(
    people: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "other"
    other = EmbeddingContract(dim=512, model_sha256="0" * 64, model_name="some-other-model")
    Gallery(db, contract=other, backend="numpy").enroll("x", np.ones(512, np.float32))
    code, _, err = run(capsys, "gallery", "--db", db, "search", people / "obama/obama.jpg")
    assert code == 2 and "some-other-model" in err and "different models" in err


def test_cluster_cli(people: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "clusters.json"
    code, out, _ = run(capsys, "cluster", people, "--largest", "--out", out_file)
    assert code == 0 and str(out_file) in out
    result = json.loads(out_file.read_text())
    assert result["photos"] == result["faces"] == 13 and result["no_face"] == []
    groups = [{Path(m["path"]).parent.name for m in c["members"]} for c in result["clusters"]]
    assert all(len(g) == 1 for g in groups)  # pure: no cluster mixes people
    assert sorted(c["size"] for c in result["clusters"]) == [2, 2, 2, 3, 4]
    code, _, err = run(capsys, "cluster", tmp_path / "missing")
    assert code == 2 and "not a folder" in err
