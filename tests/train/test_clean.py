"""Sub-center cleaning: the dominant-sub-centre rule on constructed geometry, and ``arcface clean`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arcface.cli import main  # noqa: E402
from arcface.train import checkpoint as ckpt  # noqa: E402
from arcface.train.clean import _decide, dominant_angles  # noqa: E402
from arcface.train.config import build_config  # noqa: E402
from arcface.train.data import RecordIODataset  # noqa: E402
from arcface.train.synthetic import make_identities, write_image_folder  # noqa: E402
from arcface.train.trainer import Trainer  # noqa: E402


def _rot(a_deg: float, u: int, v: int, d: int = 4) -> list[float]:
    """Unit vector at angle ``a_deg`` from axis u towards axis v."""
    x = [0.0] * d
    x[u], x[v] = math.cos(math.radians(a_deg)), math.sin(math.radians(a_deg))
    return x


@pytest.fixture()
def geometry():
    eye = torch.eye(4)
    # Class 0 sub-centres e0, e1, e2; class 1 sub-centres e3, e0, e1 (K = 3).
    weight = torch.stack([eye[0], eye[1], eye[2], eye[3], eye[0], eye[1]]) * 3.0  # norms do not matter
    emb = torch.tensor(
        [
            _rot(10, 0, 3),  # class 0, 10 deg from e0
            _rot(20, 0, 3),
            _rot(30, 0, 1),  # nearest e0 (30 deg) rather than e1 (60 deg)
            _rot(0, 1, 0),  # exactly e1: a non-dominant sub-centre, 90 deg from e0
            _rot(80, 0, 3),  # nearest e0 but 80 deg away
            _rot(5, 3, 2),  # class 1, 5 deg from e3
            _rot(70, 3, 2),  # 70 deg: kept at 75
            _rot(0, 0, 1),  # on class 1's second sub-centre: 90 deg from e3
        ]
    )
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    return emb, labels, weight


def _reference_dominant(emb, labels, weight, k):
    """numpy reference: each class's dominant sub-centre is the one most samples are nearest to."""
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = (weight / np.linalg.norm(weight, axis=1, keepdims=True)).reshape(-1, k, weight.shape[1])
    cos = np.einsum("nd,nkd->nk", x, w[labels])
    counts = np.zeros((w.shape[0], k), int)
    np.add.at(counts, (labels, cos.argmax(1)), 1)
    dom = counts.argmax(1)[labels]
    return dom, np.arccos(np.clip(cos[np.arange(len(x)), dom], -1, 1))


def test_dominant_rule_on_known_angles(geometry):
    emb, labels, weight = geometry
    dom, ang = dominant_angles(emb, labels, weight, 3)
    assert dom.tolist() == [0, 0, 0, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(np.degrees(ang), [10, 20, 30, 90, 80, 5, 70, 90], atol=1e-3)
    dom2, ang2 = _reference_dominant(emb.numpy(), labels.numpy(), weight.numpy(), 3)
    np.testing.assert_array_equal(dom, dom2)
    np.testing.assert_allclose(ang, ang2, atol=1e-5)
    result = _decide(emb, labels, weight, 3, 75.0)
    assert result.keep.tolist() == [True, True, True, False, False, True, True, False]
    assert _decide(emb, labels, weight, 3, 85.0).keep.tolist() == [True] * 3 + [False, True] + [True, True, False]


def test_clean_cli_end_to_end(tmp_path):
    imgs, labels = make_identities(6, 6, seed=9)
    folder = write_image_folder(tmp_path / "data", imgs, labels)
    cfg = build_config(
        "tiny_cpu",
        [
            "model.width=8",
            "model.embedding_size=32",
            "batch_size=12",
            "head.subcenters=3",
            "max_steps=3",
            "ckpt_every=3",
            "progress=false",
            f"data.path={folder}",
            f"run.output={tmp_path / 'run'}",
        ],
    )
    t = Trainer(cfg)
    t.train()
    t.close()
    step = ckpt.latest_checkpoint(tmp_path / "run")
    weight, k = ckpt.load_head_weight(step)
    assert k == 3 and tuple(weight.shape) == (6 * 3, 32)
    out = tmp_path / "clean"
    assert main(["clean", str(step), str(folder), "--out", str(out), "--threshold", "40", "--rec"]) == 0
    report = json.loads((out / "clean_report.json").read_text())
    kept = (out / "cleaned.lst").read_text().splitlines()
    dropped = (out / "dropped.lst").read_text().splitlines()
    assert report["samples"] == 36 and report["kept"] == len(kept) and report["dropped"] == len(dropped)
    assert len(kept) + len(dropped) == 36 and set(kept).isdisjoint(dropped)
    assert sum(v["kept"] for v in report["per_class"].values()) == len(kept)
    assert (out / "angles.png").stat().st_size > 1000
    if kept:
        rec = RecordIODataset(out / "cleaned.rec")
        assert len(rec) == len(kept)
    # A plain (K = 1) checkpoint is refused with a clear message.
    t1 = Trainer(
        build_config(
            "tiny_cpu",
            [
                "model.width=8",
                "batch_size=12",
                "max_steps=1",
                "ckpt_every=1",
                "progress=false",
                f"data.path={folder}",
                f"run.output={tmp_path / 'k1'}",
            ],
        )
    )
    t1.train()
    t1.close()
    assert main(["clean", str(ckpt.latest_checkpoint(tmp_path / "k1")), str(folder), "--out", str(out)]) == 2


def test_data_cli_pack_and_info(tmp_path, capsys):
    imgs, labels = make_identities(3, 4, seed=1)
    folder = write_image_folder(tmp_path / "f", imgs, labels[:12])
    assert main(["data", "pack", str(folder), str(tmp_path / "out" / "train"), "--no-progress"]) == 0
    assert main(["data", "info", str(tmp_path / "out"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["images"] == 12 and info["identities"] == 3 and info["format"] == "recordio"
    assert main(["data", "info", str(tmp_path / "nothing")]) == 2
