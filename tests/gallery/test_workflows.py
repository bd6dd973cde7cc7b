"""Folder-in, answers-out workflows on real photos (../shared/data): enroll-folders, search many, find,
verify --pairs, embed --out formats."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from arcface.gallery import Gallery
from arcface.gallery.folders import ENROLLED, sync_folders
from cli_spawn import spawn_cli

HELD_BACK = {  # one photo per identity kept out of the gallery, used as a probe
    "kit_harington": "johnsnow_test1.jpg",
    "obama": "obama1_test.jpg",
    "alex_lacamoire": "alex_lacamoire1_test.jpg",
}


@pytest.fixture
def known(shared_data, tmp_path) -> tuple[Path, Path]:
    """A folder-per-identity gallery source (face_recognition's people, test photos held back) and the probes."""
    root, probes = tmp_path / "known", tmp_path / "probes"
    shutil.copytree(shared_data / "face_recognition_by_identity", root)
    probes.mkdir()
    for ident, name in HELD_BACK.items():
        shutil.move(root / ident / name, probes / f"{ident}__{name}")
    return root, probes


def test_enroll_folders_one_identity_per_folder_group_photos_and_duplicates(known, shared_data, analyzer, tmp_path):
    root, _ = known
    shutil.copy(shared_data / "multi_face" / "obama_and_biden.jpg", root / "obama" / "with_biden.jpg")
    shutil.copy(root / "biden" / "biden.jpg", root / "biden" / "biden_copy.jpg")  # same bytes, another name
    shutil.copy(root / "biden" / "biden.jpg", root / "obama" / "misfiled.jpg")  # same bytes, another person
    (root / "loose.jpg").write_bytes((root / "biden" / "biden.jpg").read_bytes())
    with Gallery(tmp_path / "db", create=True) as g:
        report = sync_folders(g, analyzer, root)
        assert sorted(g.names) == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
        assert report.enrolled == {"alex_lacamoire": 1, "biden": 2, "kit_harington": 2, "obama": 3, "rose_leslie": 2}
        reasons = {Path(p).name: r for p, r in report.skipped}
        assert reasons["with_biden.jpg"].endswith("faces (group photo; use --largest or --select)")
        assert reasons["biden_copy.jpg"].startswith("duplicate of")
        assert "enrolled as identity 'biden'" in reasons["misfiled.jpg"]
        assert reasons["loose.jpg"] == "not in an identity folder"
        assert g.info("obama")["images"] == 3 and len(g.metadata("obama")[ENROLLED]) == 3
        again = sync_folders(g, analyzer, root)  # nothing new: nothing embedded, nothing counted twice
        assert again.enrolled == {} and sorted(again.unchanged) == sorted(g.names)
        assert g.info("obama")["images"] == 3
        taken = sync_folders(g, analyzer, root, largest=True)  # group photos on purpose
        assert taken.enrolled == {"obama": 1} and g.info("obama")["images"] == 4


def test_search_many_with_options_after_the_action(known, tmp_path):
    root, probes = known
    db = tmp_path / "db"
    rc, out, err, _ = spawn_cli(["gallery", "enroll-folders", str(root), "--db", str(db), "--json"])
    assert rc == 0, err
    assert json.loads(out)["identities"] == 5
    rc, out, err, _ = spawn_cli(["gallery", "--db", str(db), "search", str(probes), "--json"])  # a folder
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 3  # one JSON object per image, one model load
    for entry in lines:
        want = Path(entry["image"]).name.split("__")[0]
        best = max(entry["faces"], key=lambda f: f["score"])
        assert best["identity"] == want, entry
    rc, out, err, _ = spawn_cli(["gallery", "search", str(probes / "obama__obama1_test.jpg"), "--db", str(db)])
    assert rc == 0 and ": obama (cosine" in out
    rc, _, err, _ = spawn_cli(["gallery", "search", str(probes)])
    assert rc == 2 and "--db" in err


def test_find_builds_and_updates_its_cache(known, shared_data, tmp_path):
    root, probes = known
    probe = probes / "kit_harington__johnsnow_test1.jpg"
    rc, out, err, _ = spawn_cli(["find", str(probe), "--db-path", str(root), "--json"])
    assert rc == 0, err
    assert json.loads(out)["faces"][0]["identity"] == "kit_harington" and "5 identities (5 updated" in err
    rc, out, err, _ = spawn_cli(["find", str(probe), "--db-path", str(root), "--json"])
    assert rc == 0 and "(0 updated" in err  # cached
    shutil.rmtree(root / "kit_harington")  # the person leaves the folder: the cache follows
    rc, out, err, _ = spawn_cli(["find", str(probe), "--db-path", str(root), "--json"])
    assert "4 identities (1 updated" in err
    assert json.loads(out)["faces"][0]["identity"] == "unknown"


def test_verify_pairs_to_csv(shared_data, analyzer, tmp_path):
    labels = {r["file"]: r["identity"] for r in csv.DictReader(open(shared_data / "deepface_labels.csv"))}
    rows = list(csv.DictReader(open(shared_data / "deepface_pairs.csv")))[:24]
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "same"])
        for r in rows:
            w.writerow([f"{labels[r['file_x']]}/{r['file_x']}", f"{labels[r['file_y']]}/{r['file_y']}", r["same"]])
    root = shared_data / "deepface_by_identity"
    out = tmp_path / "res.csv"
    # the reference engine and precision, as the analyzer it is compared with ("auto" precision may pick int8 when
    # this session's timing finds it faster: its scores differ by about 0.001)
    ref = ["--runtime", "onnxruntime", "--precision", "f32"]
    argv = ["verify", "--pairs", str(pairs), "--root", str(root), "--out", str(out), *ref]
    rc, _, err, _ = spawn_cli(argv)
    assert rc == 0, err
    got = list(csv.DictReader(open(out)))
    assert len(got) == 24
    first = analyzer.verify(got[0]["path_a"], got[0]["path_b"])
    assert float(got[0]["similarity"]) == pytest.approx(first.similarity, abs=1e-5)
    correct = sum((g["same"] == "True") == (r["same"] == "1") for g, r in zip(got, rows, strict=True))
    assert correct >= 23 and f"accuracy {correct / 24:.4f} on 24 labelled" in err
    unlabelled = tmp_path / "unlabelled.csv"  # the same column may be left out
    unlabelled.write_text("".join(f"{g['path_a']},{g['path_b']}\n" for g in got[:3]))
    rc, out_json, err, _ = spawn_cli(["verify", "--pairs", str(unlabelled), "--json", *ref])
    assert rc == 0, err
    res = json.loads(out_json)
    assert [r["similarity"] for r in res["results"]] == [float(g["similarity"]) for g in got[:3]]
    assert "accuracy" not in res and all("label" not in r for r in res["results"])
    rc, _, err, _ = spawn_cli(["verify", "--pairs", str(pairs)])  # relative to the CSV's folder: none exist
    assert rc == 2 and str(tmp_path / labels[rows[0]["file_x"]] / rows[0]["file_x"]) in err


def test_embed_out_follows_the_extension(vectron_dir, tmp_path):
    photos = [str(vectron_dir / "yaoming.jpg"), str(vectron_dir / "players.jpg")]
    results = {}
    for ext in (".npz", ".npy", ".csv"):
        rc, _, err, _ = spawn_cli(["embed", *photos, "--out", str(tmp_path / f"e{ext}")])
        assert rc == 0, err
    with np.load(tmp_path / "e.npz") as z:
        results["npz"] = z["embeddings"]
        paths = z["paths"].tolist()
    results["npy"] = np.load(tmp_path / "e.npy")
    with open(tmp_path / "e.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["path", "face_index", "score"] and [r[0] for r in rows[1:]] == paths
    results["csv"] = np.array([[float(v) for v in r[7:]] for r in rows[1:]], np.float32)
    for name in ("npy", "csv"):
        np.testing.assert_array_equal(results[name], results["npz"], err_msg=name)
    rc, _, err, _ = spawn_cli(["embed", *photos, "--out", str(tmp_path / "e.txt")])
    assert rc == 2 and "unknown format '.txt'" in err and not (tmp_path / "e.txt").exists()


def test_enrolling_a_face_only_a_last_resort_stage_found_says_so(shared_data, tmp_path, capsys) -> None:
    """A face that only a last-resort stage finds (here: an AT&T crop that fills its photo, with the small canvas
    turned off, so the padded retry finds it) is enrolled with a note naming the photo and the stage, on
    ``gallery enroll`` and ``enroll-folders`` (and in the latter's JSON); a face the first pass found gets none."""
    import cv2

    from arcface.cli import main

    crop = cv2.imread(str(shared_data / "att_faces" / "s1" / "1.pgm"))
    folder = tmp_path / "known" / "s1"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "crop.png"), crop)
    frontal = shared_data / "face_recognition_by_identity" / "obama" / "obama.jpg"
    db = str(tmp_path / "db")
    single = ["--det-sizes", "single", "--runtime", "onnxruntime", "--precision", "f32"]
    assert main(["gallery", "--db", db, "enroll", *single, "s1", str(folder / "crop.png")]) == 0
    err = capsys.readouterr().err
    assert f"note: {folder / 'crop.png'}: the face was found by the padded stage" in err
    assert main(["gallery", "--db", db, "enroll", *single, "obama", str(frontal)]) == 0
    assert "note:" not in capsys.readouterr().err
    db2 = str(tmp_path / "db2")
    assert main(["gallery", "--db", db2, "enroll-folders", *single, str(tmp_path / "known")]) == 0
    assert f"note: {folder / 'crop.png'}: the face was found by the padded stage" in capsys.readouterr().err
    db3 = str(tmp_path / "db3")
    assert main(["gallery", "--db", db3, "enroll-folders", *single, str(tmp_path / "known"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["found_by_fallback"] == [{"photo": str(folder / "crop.png"), "stage": "padded"}]
