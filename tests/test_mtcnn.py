"""MTCNN, the second detector family: safe weight reading, landmarks on real faces, the mtcnn_mbf pack."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

lz4_frame = pytest.importorskip("lz4.frame")

from arcface.errors import ModelError  # noqa: E402
from arcface.models.packs import wheel_dir  # noqa: E402


@pytest.fixture(scope="module")
def weights() -> Path:
    folder = wheel_dir("mtcnn", "assets/weights")
    if folder is None or not (folder / "pnet.lz4").is_file():
        pytest.skip("the mtcnn wheel is not installed (pip install 'arcface[mtcnn]')")
    return folder


@pytest.fixture(scope="module")
def detector(weights: Path):
    from arcface.detect.mtcnn import MTCNN

    return MTCNN(weights / "pnet.lz4")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_weight_files_that_would_run_code_are_refused(tmp_path: Path, weights: Path) -> None:
    from arcface.detect.mtcnn import read_weights

    marker = tmp_path / "pwned"
    evil = tmp_path / "pnet.lz4"
    evil.write_bytes(lz4_frame.compress(pickle.dumps([_Payload(marker)])))
    with pytest.raises(ModelError, match=r"pnet\.lz4: refused.*posix\.system"):
        read_weights(evil)
    assert not marker.exists()
    # the real files: the layer shapes of P-Net (conv 3x3 3->10 ... conv 1x1 32->2)
    shapes = [a.shape for a in read_weights(weights / "pnet.lz4")]
    assert shapes[0] == (3, 3, 3, 10) and shapes[-2] == (1, 1, 32, 2) and len(shapes) == 13


def test_an_altered_weight_file_is_refused(tmp_path: Path, weights: Path) -> None:
    import shutil

    from arcface.detect.mtcnn import MTCNN

    for f in ("pnet.lz4", "rnet.lz4", "onet.lz4"):
        shutil.copy(weights / f, tmp_path / f)
    data = bytearray((tmp_path / "onet.lz4").read_bytes())
    data[-100] ^= 1
    (tmp_path / "onet.lz4").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="onet.lz4 is altered"):
        MTCNN(tmp_path / "pnet.lz4")


def test_landmarks_agree_with_scrfd_on_real_faces(detector, analyzer, wheel_images) -> None:
    from arcface.detect.nms import iou_matrix

    for name, least in (("yaoming.jpg", 1), ("gdp.jpg", 4), ("players.jpg", 15)):
        image = wheel_images[name]
        mine, ref = detector.detect(image), analyzer.detector.detect(image)
        iou = iou_matrix(ref.boxes, mine.boxes) if len(mine) else np.zeros((len(ref), 0))
        matched = [(i, int(iou[i].argmax())) for i in range(len(ref)) if iou.shape[1] and iou[i].max() > 0.4]
        assert len(matched) >= least, (name, len(matched), len(ref), len(mine))
        errors = []
        for i, j in matched:  # the same faces, landmarks in the same order
            kp = ref.kps[i]
            errors.append(np.abs(mine.kps[j] - kp).max() / float(np.linalg.norm(kp[1] - kp[0])))
            assert mine.kps[j][0, 0] < mine.kps[j][1, 0]  # left eye is image-left
        assert np.median(errors) < 0.2, (name, np.round(errors, 3))
    assert detector.detect(np.zeros((120, 160, 3), np.uint8)).boxes.shape == (0, 4)


def test_mtcnn_pack_verifies_real_people(shared_data: Path, analyzer) -> None:
    """The mtcnn_mbf pack the way the README uses it: same-person and different-person photos."""
    from arcface.pipeline import FaceAnalyzer

    fa = FaceAnalyzer(pack="mtcnn_mbf")
    assert fa.pack.detector_family == "mtcnn" and fa.pack.verified and "MIT" in fa.pack.licence
    people = shared_data / "face_recognition_by_identity"
    obama = sorted((people / "obama").glob("*.jpg"))
    biden = sorted((people / "biden").glob("*.jpg"))
    assert fa.verify(obama[0], obama[1]).same
    assert not fa.verify(obama[0], biden[0]).same
    # the embedding of the same face, aligned from MTCNN's landmarks, stays close to the SCRFD-aligned one
    a = fa.analyze(obama[0])
    b = analyzer.analyze(obama[0])
    assert float(max(a, key=lambda f: f.area).embedding @ max(b, key=lambda f: f.area).embedding) > 0.85


def test_mtcnn_pack_through_the_cli(capsys, shared_data: Path) -> None:
    from arcface.cli import main

    people = shared_data / "face_recognition_by_identity" / "obama"
    photos = sorted(people.glob("*.jpg"))[:2]
    assert main(["verify", *map(str, photos), "--pack", "mtcnn_mbf"]) == 0
    assert "SAME person" in capsys.readouterr().out


def test_weights_reader_needs_nothing_but_numpy_and_lz4() -> None:
    """The reader is restricted: a stream that names any other global is refused before it is called."""
    from arcface.detect.mtcnn import _WeightsUnpickler

    with pytest.raises(pickle.UnpicklingError, match="refused global builtins.eval"):
        _WeightsUnpickler(io.BytesIO(pickle.dumps(eval))).load()
