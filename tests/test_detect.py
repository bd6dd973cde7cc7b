import cv2
import numpy as np
import pytest

from arcface.detect import SCRFD, iou_matrix, nms
from arcface.detect.scrfd import letterbox
from arcface.errors import InputError, ModelError


def _brute_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua


def test_iou_and_nms_against_brute_force():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (40, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (40, 2))], axis=1)
    scores = rng.uniform(size=40)
    m = iou_matrix(boxes, boxes)
    for i in range(40):
        for j in range(40):
            assert m[i, j] == pytest.approx(_brute_iou(boxes[i], boxes[j]))
    keep = nms(boxes, scores, 0.3)
    # Reference greedy NMS written out plainly.
    ref, alive = [], list(np.argsort(-scores))
    while alive:
        i = alive.pop(0)
        ref.append(i)
        alive = [j for j in alive if _brute_iou(boxes[i], boxes[j]) <= 0.3]
    assert keep.tolist() == ref


def test_letterbox_keeps_aspect_and_top_left():
    img = np.full((100, 300, 3), 7, np.uint8)
    canvas, lb = letterbox(img, (640, 640))
    assert canvas.shape == (640, 640, 3) and lb.width == 640 and lb.height == 213
    assert canvas[:213, :640].min() == 7 and canvas[213:].max() == 0


@pytest.fixture(scope="module")
def detector(vectron_dir):
    return SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx")


def test_faces_in_wheel_photos(detector, wheel_images):
    counts = {n: len(detector.detect(img)) for n, img in wheel_images.items()}
    assert counts["yaoming.jpg"] == 1
    assert counts["gdp.jpg"] >= 4
    assert counts["players.jpg"] >= 15
    det = detector.detect(wheel_images["yaoming.jpg"])
    (x1, y1, x2, y2), kps = det.boxes[0], det.kps[0]
    # Landmarks inside the box, eyes above the mouth, left eye image-left of the right eye.
    assert x1 < kps[:, 0].min() and kps[:, 0].max() < x2 and y1 < kps[:, 1].min() and kps[:, 1].max() < y2
    assert kps[0, 0] < kps[1, 0] and kps[:2, 1].max() < kps[3:, 1].min()


def test_flip_and_rescale_consistency(detector, wheel_images):
    img = wheel_images["gdp.jpg"]
    h, w = img.shape[:2]
    base = detector.detect(img)
    flipped = detector.detect(np.ascontiguousarray(img[:, ::-1]))
    mirrored = np.stack([w - flipped.boxes[:, 2], flipped.boxes[:, 1], w - flipped.boxes[:, 0], flipped.boxes[:, 3]], 1)
    # Every confident face (partial faces cut by the border score differently) is found mirrored.
    confident = base.boxes[base.scores > 0.8]
    assert len(confident) >= 3
    assert np.all(iou_matrix(confident, mirrored).max(axis=1) > 0.85)
    big = detector.detect(cv2.resize(img, (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_CUBIC))
    assert len(big) == len(base)
    assert np.all(iou_matrix(base.boxes, big.boxes / 1.5).max(axis=1) > 0.9)


def test_batched_equals_single(detector, wheel_images):
    imgs = list(wheel_images.values())
    many = detector.detect_many(imgs)
    for img, d in zip(imgs, many):
        single = detector.detect(img)
        np.testing.assert_allclose(d.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(d.kps, single.kps, atol=1e-3)


def test_max_faces_min_size_and_input_size(vectron_dir, wheel_images):
    img = wheel_images["players.jpg"]
    full = SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx").detect(img)
    top3 = SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx", max_faces=3).detect(img)
    areas = (full.boxes[:, 2] - full.boxes[:, 0]) * (full.boxes[:, 3] - full.boxes[:, 1])
    assert len(top3) == 3
    np.testing.assert_allclose(
        np.sort((top3.boxes[:, 2] - top3.boxes[:, 0]) * (top3.boxes[:, 3] - top3.boxes[:, 1])),
        np.sort(areas)[-3:],
        rtol=1e-5,
    )
    side = np.minimum(full.boxes[:, 2] - full.boxes[:, 0], full.boxes[:, 3] - full.boxes[:, 1])
    big = SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx", min_face_size=float(np.median(side))).detect(img)
    assert len(big) == int(np.sum(side >= np.median(side)))
    wide = SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx", input_size=(960, 608)).detect(img)
    assert len(wide) >= len(full) - 2
    with pytest.raises(InputError, match="multiples of 32"):
        SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx", input_size=(650, 640))


def test_blank_image_and_bad_inputs(detector):
    assert len(detector.detect(np.zeros((300, 300, 3), np.uint8))) == 0
    with pytest.raises(InputError):
        detector.detect(np.zeros((300, 300), np.uint8))


def test_small_full_frame_face_found_by_the_small_canvas_or_the_padded_retry(vectron_dir, shared_data):
    """A face that fills its photo (an AT&T crop, 92x112): the 640 canvas alone misses it; the small canvas of
    multi-resolution detection finds it in the first pass, the padded retry without it."""
    img = cv2.cvtColor(cv2.imread(str(shared_data / "att_faces" / "s1" / "1.pgm"), 0), cv2.COLOR_GRAY2RGB)
    model = vectron_dir / "scrfd_500m_bnkps.onnx"
    assert len(SCRFD(model, sizes="single", pad_retry=False, fallback_threshold=None).detect(img)) == 0
    found = {}
    for sizes in ("auto", "single"):
        det = SCRFD(model, sizes=sizes).detect(img)
        assert len(det) == 1
        x1, y1, x2, y2 = det.boxes[0]
        assert 0 <= x1 < x2 <= 92 and 0 <= y1 < y2 <= 112 and (x2 - x1) > 40
        found[sizes] = det
    assert found["auto"].path == "detector" and found["single"].path == "padded"
    # both put the eyes in the upper half, left eye image-left, mouth below the nose, within a few pixels
    np.testing.assert_allclose(found["auto"].kps, found["single"].kps, atol=4.0)
    kps = found["auto"].kps[0]
    assert kps[0, 0] < kps[1, 0] and max(kps[0, 1], kps[1, 1]) < 60 < min(kps[3, 1], kps[4, 1])


def test_recognizer_is_not_a_detector(vectron_dir):
    with pytest.raises(ModelError, match="outputs"):
        SCRFD(vectron_dir / "w600k_mbf.onnx")


def test_faces_the_main_canvas_finds_keep_its_detection_exactly(vectron_dir, shared_data, wheel_images):
    """Multi-resolution detection takes each face from the largest canvas that found it: on ordinary photos every
    box, score and landmark equals the single 640 pass (insightface's); the small canvas only adds faces that
    overlap none of those. (Merged by one NMS, the 160 canvas's coarser landmarks won for most faces.)"""
    from arcface.detect.nms import iou_matrix
    from arcface.imageio import load_image

    model = vectron_dir / "scrfd_500m_bnkps.onnx"
    auto, single = SCRFD(model, sizes="auto"), SCRFD(model, sizes="single", pad_retry=False)
    photos = [wheel_images[n] for n in ("yaoming.jpg", "gdp.jpg", "players.jpg")]
    photos += [load_image(p) for p in sorted((shared_data / "deepface_by_identity").glob("*/*.jpg"))[:20]]
    photos += [load_image(p) for p in sorted((shared_data / "multi_face").glob("*")) if p.is_file()]
    compared = 0
    for img in photos:
        a, s = auto.detect(img), single.detect(img)
        assert len(a) >= len(s)
        if not len(s):
            continue
        iou = iou_matrix(a.boxes, s.boxes)
        for j in range(len(s)):  # each single-pass face is in the auto result, bit for bit
            i = int(np.argmax(iou[:, j]))
            np.testing.assert_array_equal(a.kps[i], s.kps[j])
            np.testing.assert_array_equal(a.boxes[i], s.boxes[j])
            assert a.scores[i] == s.scores[j]
            compared += 1
        extra = [i for i in range(len(a)) if iou[i].max() <= auto.nms_threshold]
        assert len(extra) == len(a) - len(s)  # the rest overlap no main-canvas face
        assert list(a.scores) == sorted(a.scores, reverse=True)
    assert compared >= 50  # 57 here: 28 in the wheel photos, the rest in ../shared/data
