import cv2
import numpy as np
import onnxruntime as ort
import pytest

from arcface.align import align_faces
from arcface.detect import SCRFD
from arcface.embed.onnx import OnnxEmbedder
from arcface.errors import InputError


@pytest.fixture(scope="module")
def crops(vectron_dir, wheel_images):
    det = SCRFD(vectron_dir / "scrfd_500m_bnkps.onnx")
    out = [align_faces(img, det.detect(img).kps) for img in wheel_images.values()]
    return np.concatenate(out)


@pytest.fixture(scope="module")
def embedder(vectron_dir):
    return OnnxEmbedder(vectron_dir / "w600k_mbf.onnx")


def test_matches_bare_onnxruntime_reference(vectron_dir, embedder, crops):
    # Reference preprocessing as insightface does it: BGR crops through cv2.dnn.blobFromImages with swapRB.
    sess = ort.InferenceSession(str(vectron_dir / "w600k_mbf.onnx"), providers=["CPUExecutionProvider"])
    bgr = [c[..., ::-1] for c in crops[:8]]
    blob = cv2.dnn.blobFromImages(bgr, 1.0 / 127.5, (112, 112), (127.5, 127.5, 127.5), swapRB=True)
    ref = sess.run(None, {"input.1": blob})[0]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    ours = embedder.embed(crops[:8])
    assert np.min(np.sum(ref * ours, axis=1)) > 0.99999


def test_unit_norm_and_batch_invariance(embedder, crops):
    e_all = embedder.embed(crops, batch_size=128)
    e_one = np.concatenate([embedder.embed(c[None]) for c in crops[:5]])
    np.testing.assert_allclose(np.linalg.norm(e_all, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e_all[:5], e_one, atol=2e-5)
    e_small = embedder.embed(crops, batch_size=7)
    np.testing.assert_allclose(e_all, e_small, atol=2e-5)


def test_flip_tta_is_normalised_sum(embedder, crops):
    raw = embedder.raw(crops[:4]) + embedder.raw(crops[:4, :, ::-1])
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(embedder.embed(crops[:4], flip=True), expected, atol=1e-5)
    # flip TTA stays close to the plain embedding of the same face
    assert np.min(np.sum(embedder.embed(crops[:4], flip=True) * embedder.embed(crops[:4]), axis=1)) > 0.8


def test_different_faces_differ(embedder, crops):
    e = embedder.embed(crops)
    sim = e @ e.T
    off = sim[np.triu_indices(len(e), 1)]
    # Faces of different photos are mostly different people: low similarity for almost all pairs.
    assert np.median(off) < 0.15 and np.mean(off < 0.4) > 0.97


def test_bad_crop_shapes(embedder):
    with pytest.raises(InputError, match="112"):
        embedder.embed(np.zeros((2, 100, 100, 3), np.uint8))
    assert embedder.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 512)
