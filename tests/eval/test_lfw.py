"""LFW from folders + pairs.txt: parsing, fake analyzer, and the real pipeline on ../shared/data photos."""

from __future__ import annotations

import itertools
import shutil

import cv2
import numpy as np
import pytest
from eval_fakes import FakeAnalyzer, PatternEmbedder, crop_align

from arcface.errors import InputError
from arcface.eval import lfw
from arcface.eval.faces import face_crop, select_face
from arcface.eval.metrics import kfold_accuracy


def _write_pairs(path, sets):
    """sets: list of (same_lines, diff_lines); each set must have equal counts."""
    per = len(sets[0][0])
    head = f"{len(sets)} {per}" if len(sets) > 1 else f"{per}"
    lines = [head]
    for same, diff in sets:
        lines += [f"{n} {a} {b}" for n, a, b in same]
        lines += [f"{n1} {a} {n2} {b}" for n1, a, n2, b in diff]
    path.write_text("\n".join(lines) + "\n")


def test_parse_pairs_formats(tmp_path):
    p = tmp_path / "pairs.txt"
    _write_pairs(p, [([("A", 1, 2)], [("A", 1, "B", 1)]), ([("B", 1, 2)], [("A", 2, "B", 2)])])
    lp = lfw.parse_pairs(p)
    assert lp.pairs[0] == ("A", 1, "A", 2) and lp.pairs[1] == ("A", 1, "B", 1)
    assert lp.issame.tolist() == [True, False, True, False]
    assert lp.folds.tolist() == [0, 0, 1, 1]
    d = tmp_path / "dev.txt"
    _write_pairs(d, [([("A", 1, 2), ("B", 1, 2)], [("A", 1, "B", 1), ("A", 2, "B", 2)])])
    ld = lfw.parse_pairs(d)
    assert ld.folds is None and ld.issame.tolist() == [True, True, False, False]
    assert str(lfw.image_path("/r", "A", 7)).endswith("A/A_0007.jpg")


@pytest.mark.parametrize(
    "text, match",
    [("", "empty"), ("x y\n", "first line"), ("1 1\nA 1 2\n", "announces 2"), ("1 1\nA 1 B 2\nA 1 2\n", "line 2")],
)
def test_parse_pairs_errors(tmp_path, text, match):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        lfw.parse_pairs(p)


def test_select_face_and_centre_crop_fallback():
    boxes = np.array([[0, 0, 50, 50], [40, 40, 60, 60], [30, 30, 70, 70]], np.float32)
    assert select_face(boxes, (100, 100, 3)) == 2  # both centred at 50: larger wins
    assert select_face(boxes[:2], (100, 100, 3)) == 1
    # nothing detected: the central square (side 0.5 x the shorter side) becomes the crop, and nothing around it
    from arcface.align import align_faces
    from arcface.detect.base import Detections

    class NoFaces:
        def detect(self, image):
            return Detections.empty(True)

    img = np.zeros((100, 200, 3), np.uint8)
    img[25:75, 75:125] = 255
    for size in (112, 224):
        c, detected = face_crop(img, NoFaces(), align_faces, size=size, fallback_fraction=0.5)
        assert not detected and c.shape == (size, size, 3)
        assert c[4:-4, 4:-4].min() == 255  # inside: the white square (its edge may blend with the black)
    c, _ = face_crop(img, NoFaces(), align_faces, size=112, fallback_fraction=0.6)  # a larger square: black border
    assert c[56, 56].min() == 255 and c[2, 56].max() == 0


def test_evaluate_lfw_fake_analyzer(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"Person_{i}" for i in range(6)]
    root = tmp_path / "lfw"
    undetectable = {("Person_0", 2)}
    for name in names:
        base = rng.integers(30, 256, (8, 8, 3)).astype(np.uint8)
        (root / name).mkdir(parents=True)
        for k in (1, 2, 3):
            img = cv2.resize(base, (96, 96), interpolation=cv2.INTER_NEAREST)
            img = np.clip(img + rng.normal(0, 8, img.shape), 1, 255).astype(np.uint8)
            if (name, k) in undetectable:
                img[:8, :8] = 0
            cv2.imwrite(str(lfw.image_path(root, name, k)), img[..., ::-1])
    sets = []
    for s in range(2):
        same = [(names[(s * 3 + j) % 6], 1 + j % 2, 3) for j in range(3)]
        diff = [(names[j], 1 + s, names[(j + 1 + s) % 6], 2) for j in range(3)]
        sets.append((same, diff))
    pairs = tmp_path / "pairs.txt"
    _write_pairs(pairs, sets)
    emb = PatternEmbedder()
    res = lfw.evaluate_lfw(root, pairs, FakeAnalyzer(emb), aligner=crop_align, batch_size=4)
    d = res.to_dict()
    assert d["n_undetected"] == 1 and d["undetected"][0].endswith("Person_0_0002.jpg")
    # independent reference: same embedding path, pairs scored directly, folds = the two sets
    lp = lfw.parse_pairs(pairs)
    assert d["n_images"] == len({(a, i) for a, i, _, _ in lp.pairs} | {(b, j) for _, _, b, j in lp.pairs})

    def crop(name, k):
        img = cv2.imread(str(lfw.image_path(root, name, k)))[..., ::-1]
        if (name, k) in undetectable:  # the central 48-px square of the 96-px photo scaled onto 112x112
            scale, x0 = 112 / 48, 24
            m = np.array([[scale, 0, -scale * x0], [0, scale, -scale * x0]], np.float64)
            return cv2.warpAffine(img, m, (112, 112), flags=cv2.INTER_LINEAR)
        return cv2.resize(img, (112, 112), interpolation=cv2.INTER_AREA)

    scores = [
        float(emb.embed(crop(a, i)[None], True)[0] @ emb.embed(crop(b, j)[None], True)[0]) for a, i, b, j in lp.pairs
    ]
    ref = kfold_accuracy(scores, lp.issame, folds=lp.folds)
    assert res.accuracy == pytest.approx(ref.accuracy) and res.threshold == pytest.approx(ref.threshold)


def test_evaluate_lfw_missing_image(tmp_path):
    pairs = tmp_path / "pairs.txt"
    _write_pairs(pairs, [([("A", 1, 2)], [("A", 1, "B", 1)])])
    with pytest.raises(InputError, match="not found"):
        lfw.evaluate_lfw(tmp_path, pairs, FakeAnalyzer(PatternEmbedder()), aligner=crop_align)


def test_evaluate_lfw_real_photos(tmp_path, shared_data):
    """LFW-like folder from the labelled face_recognition photos, through the real default pipeline."""
    pipeline = pytest.importorskip("arcface.pipeline")
    src = shared_data / "face_recognition_by_identity"
    root = tmp_path / "lfw"
    files = {}
    for person in sorted(p for p in src.iterdir() if p.is_dir()):
        (root / person.name).mkdir(parents=True)
        photos = sorted(q for q in person.iterdir() if q.suffix.lower() in (".jpg", ".jpeg"))
        for k, q in enumerate(photos, 1):
            img = cv2.imread(str(q))
            cv2.imwrite(str(lfw.image_path(root, person.name, k)), img)
        files[person.name] = len(photos)
    same = [(n, a, b) for n, c in files.items() for a, b in itertools.combinations(range(1, c + 1), 2)]
    diff = [(n1, 1, n2, 1) for n1, n2 in itertools.combinations(sorted(files), 2)]
    k = min(len(same), len(diff))
    _write_pairs(tmp_path / "pairs.txt", [(same[:k], diff[:k])])
    analyzer = pipeline.FaceAnalyzer()
    res = lfw.evaluate_lfw(root, tmp_path / "pairs.txt", analyzer, n_folds=2, fars=(0.1,))
    assert res.extra["n_undetected"] == 0
    assert res.accuracy >= 0.9  # a real recognizer separates these 5 people
    assert res.eer <= 0.15
    shutil.rmtree(root)
