import numpy as np
import pytest

from arcface.align import (
    ARCFACE_TEMPLATE,
    align_faces,
    alignment_matrices,
    estimate_similarity,
    invert_affine,
    template_for,
    transform_points,
)
from arcface.errors import InputError


def _similarity(scale, angle, tx, ty):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_recovers_exact_similarity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = _similarity(rng.uniform(0.2, 5), rng.uniform(-np.pi, np.pi), *rng.uniform(-100, 100, 2))
        src = rng.uniform(0, 200, (5, 2))
        dst = transform_points(m, src)
        np.testing.assert_allclose(estimate_similarity(src, dst), m, atol=1e-9)


def test_least_squares_matches_linear_solve_reference():
    # Reference: the 4-parameter linear least-squares problem [x -y 1 0; y x 0 1][a b tx ty]^T = dst.
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    dst = rng.uniform(0, 112, (5, 2))
    rows = []
    for x, y in src:
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), dst.reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(estimate_similarity(src, dst), [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_no_reflection_even_for_mirrored_points():
    src = ARCFACE_TEMPLATE.astype(np.float64)
    mirrored = src * [-1, 1]
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_batched_equals_single_and_inverse_round_trip():
    rng = np.random.default_rng(2)
    kps = rng.uniform(50, 300, (7, 5, 2))
    mats = alignment_matrices(kps)
    for k, m in zip(kps, mats):
        np.testing.assert_allclose(m, estimate_similarity(k, ARCFACE_TEMPLATE), atol=1e-9)
    back = transform_points(invert_affine(mats), transform_points(mats, kps))
    np.testing.assert_allclose(back, kps, atol=1e-8)


def test_template_sizes():
    np.testing.assert_allclose(template_for(224), ARCFACE_TEMPLATE * 2)
    np.testing.assert_allclose(template_for(128)[:, 0], ARCFACE_TEMPLATE[:, 0] + 8)
    with pytest.raises(InputError):
        template_for(100)


def test_warp_places_landmarks_on_template():
    # Paint dots at known landmarks of a synthetic image; after alignment they sit on the template.
    crop_to_image = _similarity(2.5, 0.3, 150, 100)
    kps = transform_points(crop_to_image, ARCFACE_TEMPLATE)  # image points that map to the template
    img = np.zeros((500, 500, 3), np.uint8)
    for x, y in kps:
        img[int(round(y)) - 3 : int(round(y)) + 4, int(round(x)) - 3 : int(round(x)) + 4] = 255
    crop = align_faces(img, kps[None])[0]
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:
        assert crop[int(round(y)), int(round(x))].min() > 200


def test_bad_landmarks():
    with pytest.raises(InputError):
        alignment_matrices(np.zeros((2, 4, 2)))
    with pytest.raises(InputError, match="degenerate"):
        estimate_similarity(np.zeros((5, 2)), ARCFACE_TEMPLATE)
    assert align_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 5, 2))).shape == (0, 112, 112, 3)
