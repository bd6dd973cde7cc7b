"""Clear errors and exit codes, batches that survive bad files, broken models that fail fast (trust issue).

Each test reproduces a case of the issue as it was reported (a traceback, exit 1, a crash or a lost batch)
and asserts the safe outcome: exit 2 with one line naming the input, or the good files processed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from arcface.cli import main
from arcface.errors import InputError, ModelError
from arcface.imageio import load_image


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str, *needles: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


# ------------------------------------------------------------------------------------------ exit codes


def test_bad_arguments_and_paths_exit_2_with_one_line(capsys, tmp_path: Path, vectron_dir: Path) -> None:
    photo = str(vectron_dir / "yaoming.jpg")
    code, _, err = _run(capsys, "detect", photo, "--draw", str(tmp_path / "x.xyz"))
    assert code == 2
    _one_line_error(err, "x.xyz", "extension")
    (tmp_path / "outdir").mkdir()
    code, _, err = _run(capsys, "embed", photo, "--out", str(tmp_path / "outdir"))
    assert code == 2
    _one_line_error(err, "outdir", "is a directory")
    code, _, err = _run(capsys, "detect", photo, "--det-size", "100000")
    assert code == 2
    _one_line_error(err, "100000")
    code, _, err = _run(capsys, "detect", "")
    assert code == 2
    _one_line_error(err, "empty string")
    loop = tmp_path / "loop.jpg"
    os.symlink(loop, loop)
    code, _, err = _run(capsys, "detect", str(loop))
    assert code == 2
    _one_line_error(err, "loop.jpg", "symbolic link loop")


def test_folder_commands_name_a_folder_without_images(capsys, tmp_path: Path) -> None:
    """embed, cluster and the gallery's enroll and search on a folder holding no image file: exit 2, one line
    naming the folder (one helper, ``arcface.cli.common.image_files``, says it for all of them)."""
    empty = tmp_path / "no-photos"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    db = str(tmp_path / "db")
    for args in (
        ["embed", str(empty)],
        ["cluster", str(empty)],
        ["gallery", "enroll", "ada", str(empty), "--db", db],
        ["gallery", "search", str(empty), "--db", db],
    ):
        code, _, err = _run(capsys, *args)
        assert code == 2, args
        _one_line_error(err, "no image files in", str(empty))


def test_debug_prints_the_traceback(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "detect", str(tmp_path / "missing.jpg"), "--debug")
    assert code == 2 and "Traceback" in err and "missing.jpg: no such file" in err


def test_every_command_documents_its_exit_codes(capsys) -> None:
    from arcface.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert "exit status: 0 success; 1" in p.format_help().replace("\n", " "), name


def test_library_inputs_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty image"):
        load_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(InputError, match="empty string"):
        load_image("")
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "dangling.jpg")
    with pytest.raises(InputError, match="dangling.jpg: broken symbolic link"):
        load_image(tmp_path / "dangling.jpg")


def test_verify_json_reports_no_face(capsys, tmp_path: Path, vectron_dir: Path) -> None:
    import cv2

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((160, 200, 3), 128, np.uint8))
    code, out, _ = _run(capsys, "verify", str(vectron_dir / "yaoming.jpg"), str(blank), "--json")
    assert code == 1
    assert json.loads(out) == {"error": f"no face found in {blank}", "code": "no_face", "image": str(blank)}


# ------------------------------------------------------------------------------------ batches survive


@pytest.fixture()
def five_good_one_truncated(shared_data: Path, tmp_path: Path) -> Path:
    src = sorted((shared_data / "deepface_by_identity").rglob("*.jpg"))[:5]
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, p in enumerate(src):
        shutil.copy(p, folder / f"good{i}.jpg")
    data = src[0].read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 3])
    return folder


def test_one_bad_file_does_not_sink_embed(capsys, five_good_one_truncated: Path, tmp_path: Path) -> None:
    """Case 10: five good photos and one truncated JPEG used to exit 2 and write nothing."""
    out = tmp_path / "emb.npz"
    code, _, err = _run(capsys, "embed", str(five_good_one_truncated), "--out", str(out))
    assert code == 0, err
    assert "broken.jpg" in err and "truncated JPEG" in err
    with np.load(out) as z:
        assert z["embeddings"].shape == (5, 512)
        assert [Path(p).name for p in z["error_paths"]] == ["broken.jpg"]
        assert "truncated" in str(z["error_messages"][0])
    code, out_json, _ = _run(capsys, "embed", str(five_good_one_truncated), "--json")
    payload = json.loads(out_json)
    assert code == 0 and len(payload["faces"]) == 5 and payload["errors"][0]["source"].endswith("broken.jpg")
    code, _, err = _run(capsys, "embed", str(five_good_one_truncated), "--out", str(out), "--strict")
    assert code == 2 and "--strict" in err


def test_analyze_many_skips_or_raises(analyzer, five_good_one_truncated: Path) -> None:
    files = sorted(five_good_one_truncated.iterdir())  # broken.jpg sorts first
    with pytest.raises(InputError, match="broken.jpg"):
        analyzer.analyze_many(files)
    batch = analyzer.analyze_many(files, on_error="skip")
    assert len(batch) == 6 and batch[0] == [] and all(len(f) >= 1 for f in batch[1:])
    assert [(e.index, Path(e.source).name) for e in batch.errors] == [(0, "broken.jpg")]


def test_gallery_enroll_keeps_the_good_photos(capsys, five_good_one_truncated: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    photos = sorted(five_good_one_truncated.glob("good[01].jpg")) + [five_good_one_truncated / "broken.jpg"]
    code, out, err = _run(capsys, "gallery", "--db", str(db), "enroll", "someone", *map(str, photos))
    assert code == 0, err
    assert "2 photo(s), 1 skipped" in out and "broken.jpg" in err


def test_cluster_handles_photos_with_several_faces(capsys, shared_data: Path, tmp_path: Path) -> None:
    """Case 11: ``arcface cluster`` crashed on any photo with two or more faces (``faces.index``)."""
    out = tmp_path / "clusters.json"
    code, _, err = _run(capsys, "cluster", str(shared_data / "multi_face"), "--out", str(out))
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["photos"] == 3 and result["faces"] >= 6
    members = [(m["path"], m["face"]) for c in result["clusters"] for m in c["members"]]
    assert len(members) == len(set(members)) == result["faces"]  # every face once, indices distinct per photo
    for photo in {p for p, _ in members}:
        idx = sorted(i for p, i in members if p == photo)
        assert idx == list(range(len(idx)))


# ------------------------------------------------------------------------------- broken model packs


def _recognizer(path: Path, side: int, fixed: bool) -> Path:
    """A small ONNX recognizer: (N, 3, side, side) -> flatten -> 512-d; ``fixed=False`` declares H, W free."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    hw: list = [side, side] if fixed else ["h", "w"]
    weights = np.random.default_rng(0).standard_normal((3 * side * side, 512)).astype(np.float32)
    w = numpy_helper.from_array(weights, "w")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["input", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "rec",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, *hw])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 512])],
        [w, numpy_helper.from_array(np.array([-1, 3 * side * side], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _pack(root: Path, vectron_dir: Path, rec: Path | None, meta: dict | None) -> Path:
    root.mkdir()
    shutil.copy(vectron_dir / "scrfd_500m_bnkps.onnx", root / "det.onnx")
    if rec is not None:
        shutil.move(rec, root / "rec.onnx")
    if meta is not None:
        (root / "pack.json").write_text(json.dumps(meta))
    return root


def test_pack_json_without_a_recognizer_is_a_clear_error(capsys, tmp_path: Path, vectron_dir: Path) -> None:
    pack = _pack(tmp_path / "p", vectron_dir, None, {"detector": "det.onnx"})
    code, _, err = _run(capsys, "detect", str(vectron_dir / "yaoming.jpg"), "--pack", str(pack))
    assert code == 2
    _one_line_error(err, "pack.json", "'recognizer' must name")


def test_recognizer_with_the_wrong_input_size_fails_at_load(capsys, tmp_path: Path, vectron_dir: Path) -> None:
    rec = _recognizer(tmp_path / "r.onnx", 128, fixed=True)
    pack = _pack(tmp_path / "p", vectron_dir, rec, {"detector": "det.onnx", "recognizer": "rec.onnx"})
    photo = str(vectron_dir / "yaoming.jpg")
    code, _, err = _run(capsys, "verify", photo, photo, "--pack", str(pack))
    assert code == 2
    _one_line_error(err, "rec.onnx", "128", "112x112")


def test_recognizer_that_fails_at_run_time_fails_the_self_test(tmp_path: Path, vectron_dir: Path) -> None:
    """The service used to report healthy and answer 500 on every embed."""
    from arcface.pipeline import FaceAnalyzer

    rec = _recognizer(tmp_path / "r.onnx", 128, fixed=False)  # declares any size, only runs at 128x128
    pack = _pack(tmp_path / "p", vectron_dir, rec, {"detector": "det.onnx", "recognizer": "rec.onnx"})
    fa = FaceAnalyzer(pack=pack)
    with pytest.raises(ModelError, match=r"rec\.onnx: fails on a 112x112 crop"):
        fa.self_test()
    pytest.importorskip("fastapi")
    from arcface.serve import create_app

    with pytest.raises(ModelError, match="rec.onnx"):
        create_app(analyzer=fa)
