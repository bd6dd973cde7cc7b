"""Fixtures of the HTTP service tests: real photos, an app sharing the session's analyzer, a live server."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's notice about httpx2, raised once at import
    warnings.simplefilter("ignore")
    import fastapi.testclient  # noqa: F401


@pytest.fixture(scope="session")
def photos(vectron_dir) -> dict[str, bytes]:
    """Encoded bytes of the wheel's photos: yaoming.jpg (1 face), gdp.jpg (5), players.jpg (many)."""
    return {n: (vectron_dir / n).read_bytes() for n in ("yaoming.jpg", "gdp.jpg", "players.jpg")}


@pytest.fixture(scope="session")
def blank_png() -> bytes:
    """A 200x160 mid-grey PNG: a valid image with no face."""
    ok, buf = cv2.imencode(".png", np.full((160, 200, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def make_app(analyzer):
    """``make_app(**kw)``: :func:`create_app` reusing the session's analyzer (models loaded once)."""
    from arcface.serve import create_app

    def make(**kw):
        return create_app(analyzer=analyzer, **kw)

    return make


@pytest.fixture(scope="module")
def client(make_app, tmp_path_factory):
    """TestClient of an app with a persistent gallery root and no API key."""
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("galleries")
    app = make_app(gallery_root=root)
    with TestClient(app) as c:
        c.gallery_root = root
        yield c


@pytest.fixture(scope="module")
def live_server(make_app, tmp_path_factory):
    """The app served by uvicorn on 127.0.0.1 (free port) in a background thread."""
    pytest.importorskip("uvicorn")
    from arcface.serve.runner import serve_in_thread

    root = tmp_path_factory.mktemp("live-galleries")
    server = serve_in_thread(make_app(gallery_root=root, max_upload_bytes=2_000_000))
    server.gallery_root = root
    yield server
    server.stop()
