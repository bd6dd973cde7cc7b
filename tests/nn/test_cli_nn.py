"""``arcface model-info``."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from arcface.cli import main  # noqa: E402


def test_model_info_json(capsys) -> None:
    assert main(["model-info", "iresnet50", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "iresnet50"
    assert info["params"] == pytest.approx(43.6e6, rel=0.01)
    assert info["gflops"] == pytest.approx(6.3, rel=0.02)


def test_model_info_table_lists_every_model(capsys) -> None:
    from arcface.nn import list_models

    assert main(["model-info"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out


def test_model_info_unknown_name(capsys) -> None:
    assert main(["model-info", "resnet-9000"]) == 2
    assert "registered models" in capsys.readouterr().err
