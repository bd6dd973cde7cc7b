"""``arcface serve``: options reach the app (the uvicorn runner is replaced, nothing listens)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from arcface.cli import build_parser, main


@pytest.fixture
def captured(monkeypatch, analyzer):
    import arcface.cli.serve as cli_serve
    import arcface.serve.runner as runner

    got = {}

    def fake_run(app, host, port, log_level):
        got.update(app=app, host=host, port=port, log_level=log_level)

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(cli_serve, "analyzer_from_args", lambda args: analyzer)  # models already loaded
    monkeypatch.delenv("ARCFACE_API_KEY", raising=False)
    return got


def test_serve_is_registered():
    args = build_parser().parse_args(["serve", "--port", "9123", "--max-upload-mb", "2"])
    assert args.func.__module__ == "arcface.cli.serve"
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 9123, 2.0)
    assert (args.runtime, args.precision) == ("auto", "auto")  # the service picks the engine per machine


def test_serve_options_reach_the_app(captured, tmp_path, capsys):
    key_file = tmp_path / "key.txt"
    key_file.write_text("k3y\n")
    root = tmp_path / "g"
    argv = ["serve", "--port", "9124", "--gallery-root", str(root), "--api-key-file", str(key_file)]
    assert main(argv + ["--max-upload-mb", "1.5", "--max-pixels", "1000000"]) == 0
    assert "auth on" in capsys.readouterr().out
    assert (captured["host"], captured["port"]) == ("127.0.0.1", 9124)
    with TestClient(captured["app"]) as c:
        assert c.get("/v1/config").status_code == 401
        cfg = c.get("/v1/config", headers={"X-API-Key": "k3y"}).json()
    assert cfg["limits"]["max_upload_bytes"] == int(1.5 * 1024 * 1024)
    assert cfg["limits"]["max_pixels"] == 1_000_000
    assert cfg["galleries"]["persistent"] is True and root.is_dir()


def test_serve_api_key_from_environment(captured, monkeypatch):
    monkeypatch.setenv("ARCFACE_API_KEY", "from-env")
    assert main(["serve"]) == 0
    with TestClient(captured["app"]) as c:
        assert c.get("/v1/config", headers={"X-API-Key": "from-env"}).status_code == 200


def test_serve_bad_key_file(captured, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["serve", "--api-key-file", str(empty)]) == 2
    assert "API key is empty" in capsys.readouterr().err
    assert main(["serve", "--api-key-file", str(tmp_path / "missing")]) == 2
