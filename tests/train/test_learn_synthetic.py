"""CI version of benchmarks/learn_synthetic.py: a tiny CNN learns synthetic identities it can verify.

Training identities and verification identities are disjoint, so accuracy measures learned features,
not memorised classes. Full-size figures: ``python benchmarks/learn_synthetic.py``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from arcface.train.config import build_config  # noqa: E402
from arcface.train.data import ArrayDataset  # noqa: E402
from arcface.train.synthetic import make_identities, verification_pairs  # noqa: E402
from arcface.train.trainer import Trainer  # noqa: E402
from arcface.train.verification import PairSet, VerificationCallback  # noqa: E402


def test_tiny_network_learns_to_verify_heldout_identities(tmp_path):
    imgs, labels = make_identities(100, 10, seed=0)
    vimgs, vlabels = make_identities(40, 6, seed=1)
    pimgs, issame = verification_pairs(vimgs, vlabels, 400, seed=2)
    val = VerificationCallback([PairSet("heldout", pimgs, issame)], every=30)
    cfg = build_config(
        "tiny_cpu", [f"run.output={tmp_path}", "epochs=4", "progress=false", "ckpt_every=0", "val_every=30"]
    )
    trainer = Trainer(cfg, ArrayDataset(imgs, labels), val)
    before = val.evaluate(trainer.backbone)["val/heldout"]
    summary = trainer.train()
    trainer.close()
    after = val.evaluate(trainer.backbone)["val/heldout"]
    assert [s for s, _ in val.history] == [30, 60]  # the callback ran every 30 steps
    assert summary["steps"] == 60
    assert after >= 0.90, f"held-out verification accuracy {after:.3f} (untrained {before:.3f})"
    assert after >= before + 0.15
    losses = [loss for _, loss in trainer.history]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
