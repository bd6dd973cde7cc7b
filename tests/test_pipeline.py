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
    serial = FaceAnalyzer(decode_ahead=0, lanes=1)
    one_lane = FaceAnalyzer(lanes=1)  # decoding ahead is one lane's: the lanes overlap decoding among themselves
    ahead = one_lane.analyze_many(inputs, on_error="skip")
    assert one_lane.decode_ahead == 2
    ref = serial.analyze_many(inputs, on_error="skip")
    assert [len(f) for f in ahead] == [len(f) for f in ref] == [1, 5, 0, 22]
    assert [(e.index, e.source) for e in ahead.errors] == [(2, str(bad))]
    for fa, fb in zip(ahead, ref, strict=True):
        for a, b in zip(fa, fb, strict=True):
            np.testing.assert_array_equal(a.embedding, b.embedding)
    before = threading.active_count()
    with pytest.raises(InputError, match="truncated.jpg"):
        one_lane.analyze_many(inputs)
    assert threading.active_count() == before  # the decoding thread is gone once the error is raised


def test_lanes_give_the_same_faces_and_errors_in_input_order(vectron_dir, shared_data, tmp_path) -> None:
    """Two one-thread lanes (image i in lane i % 2) against one lane of the models' own threads, on real photos
    with unreadable files among them: the same faces, boxes, landmarks and stages; embeddings equal to float
    rounding (another thread count sums in another order); errors at their input positions; with
    ``on_error="raise"`` the first unreadable input in input order is named, whichever lane met it first, and
    no lane thread is left behind."""
    import threading

    from arcface.pipeline import FaceAnalyzer

    photos = sorted((shared_data / "deepface_by_identity").glob("person0[1-3]/*.jpg"))[:6]
    photos += [vectron_dir / "gdp.jpg", shared_data / "att_faces" / "s1" / "1.pgm"]  # 5 faces; a tight grey crop
    late, early = tmp_path / "late.jpg", tmp_path / "early.png"
    late.write_bytes((vectron_dir / "gdp.jpg").read_bytes()[:300])
    early.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    inputs = photos[:1] + [early] + photos[1:4] + [late] + photos[4:]  # early: lane 1; late: index 5, lane 1
    two = FaceAnalyzer(runtime="onnxruntime", lanes=2)
    one = FaceAnalyzer(runtime="onnxruntime", lanes=1, threads=2)
    parts = two._lane_parts(len(inputs))
    assert len(parts) == 2 and all(d.session.get_session_options().intra_op_num_threads == 1 for d, _ in parts)
    got, ref = two.analyze_many(inputs, on_error="skip"), one.analyze_many(inputs, on_error="skip")
    assert [(e.index, e.source) for e in got.errors] == [(e.index, e.source) for e in ref.errors]
    assert [e.index for e in got.errors] == [1, 5]
    assert [len(f) for f in got] == [len(f) for f in ref] and sum(map(len, got)) >= 12
    for fa, fb in zip(got, ref, strict=True):
        for a, b in zip(fa, fb, strict=True):
            np.testing.assert_array_equal(a.bbox, b.bbox)
            np.testing.assert_array_equal(a.kps, b.kps)
            assert a.path == b.path and float(a.embedding @ b.embedding) > 0.99999
    before = threading.active_count()
    swapped = inputs[:1] + photos[1:3] + [early] + inputs[4:]  # unreadable at 3 (lane 1) and 5 (lane 1)
    swapped[2] = late  # and at 2 (lane 0): the first in input order
    for order, name in ((inputs, "early.png"), (swapped, "late.jpg")):
        with pytest.raises(InputError, match=name):
            two.analyze_many(order)
    assert threading.active_count() == before
    two.detector.max_faces = 1  # a setting changed after construction reaches the lanes' copies
    assert [len(f) for f in two.analyze_many([vectron_dir / "gdp.jpg"] * 4, embed=False)] == [1, 1, 1, 1]


def test_lanes_only_where_they_were_measured(analyzer) -> None:
    """The automatic rule: one-thread lanes for the pack's SCRFD and ONNX recognizer on ONNX Runtime's CPU
    provider with 2-4 threads and at least twice as many images; one lane otherwise."""
    from arcface.pipeline import MAX_LANES, FaceAnalyzer, _lane_parts

    fa = FaceAnalyzer(runtime="onnxruntime", threads=2)

    def lanes(**kw) -> int:
        args = {"detector": fa.detector, "embedder": fa.embedder, "engine": fa.engine, "threads": 2}
        args.update({"lanes": None, "n_images": 8}, **kw)
        return len(_lane_parts(**args))

    assert lanes() == 2 and lanes(threads=MAX_LANES) == MAX_LANES and lanes(threads=MAX_LANES + 1) == 1
    assert lanes(n_images=3) == 1 and lanes(threads=1) == 1 and lanes(lanes=1) == 1 and lanes(lanes=3) == 3

    class Wrapped:  # an injected detector: its sessions are its own business
        def __init__(self, inner):
            self.inner = inner

    assert lanes(detector=Wrapped(fa.detector)) == 1
    with pytest.raises(InputError, match="lanes"):
        FaceAnalyzer(lanes=0)


def test_an_analyzer_with_an_injected_model_keeps_one_lane(vectron_dir, monkeypatch) -> None:
    """An injected recognizer may run in a precision the lanes' copies would not reproduce: one lane."""
    import arcface.pipeline as pipeline

    seen = []
    real = pipeline._lane_parts

    def spy(*args):
        parts = real(*args)
        seen.append(len(parts))
        return parts

    monkeypatch.setattr(pipeline, "_lane_parts", spy)
    own = pipeline.FaceAnalyzer(runtime="onnxruntime", threads=2)
    injected = pipeline.FaceAnalyzer(runtime="onnxruntime", threads=2, embedder=own.embedder)
    photos = [vectron_dir / "yaoming.jpg"] * 4
    own.analyze_many(photos)
    injected.analyze_many(photos)
    assert seen == [2, 1]
