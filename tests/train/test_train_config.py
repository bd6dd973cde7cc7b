"""Config presets, overrides, files; the learning-rate schedule."""

from __future__ import annotations

import json

import pytest

from arcface.errors import InputError
from arcface.train.config import apply_override, build_config, get_preset, list_presets, parse_overrides
from arcface.train.schedule import lr_factor


def test_presets_carry_published_numbers():
    assert {"ms1mv3_r50", "ms1mv3_r100", "glint360k_r100", "webface_mbf", "tiny_cpu"} <= set(list_presets())
    c = get_preset("ms1mv3_r50")
    assert (c.model.network, c.model.embedding_size) == ("iresnet50", 512)
    assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.batch_size, c.optim.epochs) == (
        0.1,
        0.9,
        5e-4,
        128,
        20,
    )
    assert c.head.margin_list == (1.0, 0.5, 0.0) and c.head.scale == 64.0 and c.data.num_identities == 93431
    g = get_preset("glint360k_r100")
    assert g.head.margin_list == (1.0, 0.0, 0.4) and g.data.num_identities == 360232
    # the class count comes from the data unless set: a preset never imposes its published one
    assert all(get_preset(n).head.num_classes == 0 for n in list_presets())
    assert get_preset("webface_mbf").model.network == "mbf"
    assert get_preset("wf42m_pfc02_r100").head.sample_rate == 0.2
    get_preset("ms1mv3_r50").optim.lr = 9.0  # presets are fresh copies
    assert get_preset("ms1mv3_r50").optim.lr == 0.1


def test_overrides_in_every_form():
    c = build_config(
        "ms1mv3_r50",
        ["lr=0.2", "--optim.epochs", "3", "--margin_list=1,0.4,0", "--amp", "bf16", "data.val_sets=lfw,agedb_30"],
    )
    assert c.optim.lr == 0.2 and c.optim.epochs == 3 and c.optim.amp == "bf16"
    assert c.head.margin_list == (1.0, 0.4, 0.0) and c.data.val_sets == ("lfw", "agedb_30")
    assert parse_overrides(["--progress", "--x", "1"]) == [("progress", "true"), ("x", "1")]
    apply_override(c, "run.progress", "no")
    apply_override(c, "list_file", "none")
    assert c.run.progress is False and c.data.list_file is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nosuch=1", "unknown config key"),
        ("optim.epochs=2.5", "cannot parse"),
        ("margin_list=1,2", "cannot parse"),
        ("amp=fp8", "optim.amp"),
        ("sample_rate=0", "sample_rate"),
        ("bogus.lr=1", "unknown config section"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(InputError, match=message):
        build_config("tiny_cpu", [override])


def test_config_files_json_and_toml(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"preset": "ms1mv3_r100", "optim": {"lr": 0.05}, "run": {"output": "x"}}))
    c = build_config(str(j), ["epochs=2"])
    assert c.model.network == "iresnet100" and c.optim.lr == 0.05 and c.run.output == "x" and c.optim.epochs == 2
    t = tmp_path / "c.toml"
    t.write_text('name = "mine"\n[model]\nnetwork = "mbf"\n[head]\nmargin_list = [1.0, 0.0, 0.35]\n')
    c = build_config(str(t))
    assert c.name == "mine" and c.model.network == "mbf" and c.head.margin_list == (1.0, 0.0, 0.35)
    from arcface.train.config import TrainConfig

    assert TrainConfig.from_dict(c.to_dict()).to_dict() == c.to_dict()  # round trip
    with pytest.raises(InputError, match="neither a preset"):
        build_config("no_such_preset")


def test_lr_schedule_warmup_then_polynomial():
    total, warm = 100, 10
    assert lr_factor(0, total, warm) == pytest.approx(0.1)
    assert lr_factor(9, total, warm) == pytest.approx(1.0)
    assert lr_factor(10, total, warm) == pytest.approx(1.0)
    assert lr_factor(55, total, warm) == pytest.approx((1 - 45 / 90) ** 2)
    assert lr_factor(100, total, warm) == 0.0
    assert lr_factor(30, total, 0, power=1.0) == pytest.approx(0.7)
