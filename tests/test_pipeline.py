import json

import numpy as np
import pytest

from arcface.cli import main
from arcface.errors import InputError, NoFaceError
from arcface.face import largest_face


def _person(shared_data, person, k):
    return sorted((shared_data / "deepface_by_identity" / person).glob("*.jpg"))[k]


def test_verify_real_pairs(analyzer, shared_data):
    same = analyzer.verify(_person(shared_data, "person01", 0), _person(shared_data, "person01", 1))
    diff = analyzer.verify(_person(shared_data, "person01", 0), _person(shared_data, "person02", 0))
    assert same.same and not diff.same
    assert same.similarity > 0.4 > 0.2 > diff.similarity
    assert same.threshold == diff.threshold and -1 <= diff.similarity <= 1


def test_analyze_many_equals_analyze(analyzer, wheel_images):
    imgs = list(wheel_images.values())
    many = analyzer.analyze_many(imgs)
    for img, faces in zip(imgs, many):
        single = analyzer.analyze(img)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            np.testing.assert_allclose(a.bbox, b.bbox, atol=1e-3)
            assert float(a.embedding @ b.embedding) > 0.9999


def test_crops_on_request_and_largest_face(analyzer, wheel_images):
    faces = analyzer.analyze(wheel_images["gdp.jpg"], with_crops=True)
    assert all(f.crop.shape == (112, 112, 3) for f in faces)
    np.testing.assert_allclose(
        analyzer.embed_crops(np.stack([f.crop for f in faces])),
        np.stack([f.embedding for f in faces]),
        atol=2e-5,
    )
    assert largest_face(faces).area == max(f.area for f in faces)
    with pytest.raises(NoFaceError):
        largest_face([])


def test_no_face_is_reported_by_name(analyzer, tmp_path):
    import cv2

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(NoFaceError, match="blank.png"):
        analyzer.verify(blank, blank)


def test_threshold_validation(analyzer, wheel_images):
    with pytest.raises(InputError, match="cosine"):
        analyzer.verify(wheel_images["yaoming.jpg"], wheel_images["yaoming.jpg"], threshold=1.5)


# ---- CLI -------------------------------------------------------------------------------------------


def test_cli_verify_json_and_exit_codes(shared_data, capsys):
    a, b = _person(shared_data, "person01", 0), _person(shared_data, "person01", 2)
    assert main(["verify", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["same"] is True and isinstance(out["similarity"], float) and isinstance(out["threshold"], float)
    c = _person(shared_data, "person03", 0)
    assert main(["verify", str(a), str(c)]) == 1
    assert "DIFFERENT" in capsys.readouterr().out


def test_cli_bad_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    assert main(["verify", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg" in err and "Traceback" not in err
    assert main(["verify", str(tmp_path / "missing.jpg"), str(bad)]) == 2


def test_cli_multi_face_note(vectron_dir, capsys):
    assert main(["verify", str(vectron_dir / "yaoming.jpg"), str(vectron_dir / "gdp.jpg"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["faces"]["b"] >= 4 and any("largest" in n for n in out["notes"])


def test_cli_embed_npz_and_json(vectron_dir, tmp_path, capsys):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for name, dst in (("yaoming.jpg", "a.jpg"), ("gdp.jpg", "sub/b.jpg")):
        (folder / dst).write_bytes((vectron_dir / name).read_bytes())
    out = tmp_path / "e.npz"
    assert main(["embed", str(folder), "--out", str(out)]) == 0
    z = np.load(out)
    assert z["embeddings"].shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(z["embeddings"], axis=1), 1, atol=1e-5)
    assert [p.split("/")[-1] for p in z["paths"]] == ["a.jpg", "b.jpg"]
    capsys.readouterr()
    assert main(["embed", str(folder / "sub" / "b.jpg"), "--all-faces", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert len(js["faces"]) >= 4 and len(js["faces"][0]["embedding"]) == 512


def test_cli_detect_json_and_draw(vectron_dir, tmp_path, capsys):
    drawn = tmp_path / "drawn.jpg"
    assert main(["detect", str(vectron_dir / "gdp.jpg"), "--json", "--draw", str(drawn)]) == 0
    js = json.loads(capsys.readouterr().out)
    assert len(js["faces"]) >= 4 and len(js["faces"][0]["kps"]) == 5
    from arcface.imageio import load_image

    assert load_image(drawn).shape == load_image(vectron_dir / "gdp.jpg").shape


def test_cli_models_list(capsys):
    assert main(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert any(p["name"] == "buffalo_sc" and p["source"] == "builtin" and p["verified"] for p in listing["packs"])
    mbf = next(m for m in listing["models"] if m["name"] == "w600k_mbf")
    assert mbf["published"]["LFW"] == 99.70 and "non-commercial" in mbf["licence"]
    assert main(["models", "info", "buffalo_l", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["detector"]["name"] == "scrfd_10g_bnkps" and info["recognizer"]["published"]["IJB-C TAR@FAR=1e-4"] == 97.25
    )


def test_bgr_arrays_are_said_so_and_reprs_stay_short(analyzer, vectron_dir):
    import cv2

    path = vectron_dir / "yaoming.jpg"
    bgr = cv2.imread(str(path))
    before = bgr.copy()
    ref = analyzer.analyze(path)[0].embedding
    right = analyzer.analyze(bgr, color="bgr")[0].embedding
    wrong = analyzer.analyze(bgr)[0].embedding  # a BGR array taken as RGB: measurably another embedding
    np.testing.assert_array_equal(right, ref)
    assert float(wrong @ ref) < 0.99
    np.testing.assert_array_equal(bgr, before)  # the caller's array is not converted in place
    with pytest.raises(InputError, match="color must be 'rgb' or 'bgr'"):
        analyzer.analyze(bgr, color="BGR!")
    res = analyzer.verify(bgr, path, color="bgr")
    assert res.similarity > 0.99
    face = analyzer.analyze(path)[0]
    assert repr(face).startswith("Face(bbox=[") and "<512-d>" in repr(face) and len(repr(face)) < 100
    assert len(repr(res)) < 200 and "embedding" not in repr(res)


def test_decoding_ahead_gives_the_same_faces_and_the_same_errors(analyzer, vectron_dir, tmp_path) -> None:
    """analyze_many decodes the next photos in a background thread: same results, same errors, in order."""
    import threading

    from arcface.pipeline import FaceAnalyzer

    bad = tmp_path / "truncated.jpg"
    bad.write_bytes((vectron_dir / "gdp.jpg").read_bytes()[:200])  # a JPEG cut after its header
    inputs = [vectron_dir / "yaoming.jpg", vectron_dir / "gdp.jpg", bad, vectron_dir / "players.jpg"]
    serial = FaceAnalyzer(decode_ahead=0)
    ahead = analyzer.analyze_many(inputs, on_error="skip")
    assert analyzer.decode_ahead == 2
    ref = serial.analyze_many(inputs, on_error="skip")
    assert [len(f) for f in ahead] == [len(f) for f in ref] == [1, 5, 0, 22]
    assert [(e.index, e.source) for e in ahead.errors] == [(2, str(bad))]
    for fa, fb in zip(ahead, ref, strict=True):
        for a, b in zip(fa, fb, strict=True):
            np.testing.assert_array_equal(a.embedding, b.embedding)
    before = threading.active_count()
    with pytest.raises(InputError, match="truncated.jpg"):
        analyzer.analyze_many(inputs)
    assert threading.active_count() == before  # the decoding thread is gone once the error is raised
