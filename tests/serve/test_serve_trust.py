"""The service under hostile use: cross-site pages, keys, open binds, deletes racing reads (trust issue 4, 12)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from arcface.gallery import Gallery


def test_cross_site_page_cannot_drive_the_service(make_app, tmp_path) -> None:
    """Case 12: a multipart POST with a foreign Origin created a gallery (201)."""
    app = make_app(gallery_root=tmp_path)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        r = c.post("/v1/galleries/stolen", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin"
        assert "evil.example" in r.json()["error"]["message"]
        assert not (tmp_path / "stolen").exists()
        r = c.post("/v1/galleries/stolen", headers={"Origin": "null"})  # sandboxed iframes, file:// pages
        assert r.status_code == 403
        # the service's own page (same origin) and non-browser clients (no Origin) work
        assert c.post("/v1/galleries/mine", headers={"Origin": "http://127.0.0.1:8000"}).status_code == 201
        assert c.post("/v1/galleries/mine2").status_code == 201
    allowed = make_app(gallery_root=tmp_path, cors_origins=["https://app.example"])
    with TestClient(allowed, base_url="http://127.0.0.1:8000") as c:
        r = c.post("/v1/galleries/fromapp", headers={"Origin": "https://app.example"})
        assert r.status_code == 201 and r.headers["access-control-allow-origin"] == "https://app.example"
        assert c.post("/v1/galleries/x", headers={"Origin": "https://evil.example"}).status_code == 403


def test_non_ascii_api_key_matches_its_utf8_bytes(make_app) -> None:
    """Case 12: non-ASCII keys only matched when sent as latin-1 bytes; clients send UTF-8."""
    key = "clé-секрет-鍵"
    with TestClient(make_app(api_key=key)) as c:
        assert c.get("/v1/config", headers={"X-API-Key": key.encode("utf-8")}).status_code == 200
        assert c.get("/v1/config", headers={"X-API-Key": "clé".encode()}).status_code == 401
        assert c.get("/v1/config", headers={"X-API-Key": key.encode("utf-8")[:-1]}).status_code == 401
        assert c.get("/v1/config").status_code == 401


def test_open_bind_without_a_key_is_refused(tmp_path) -> None:
    """Case 12: ``--host 0.0.0.0`` without a key started silently."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cli_spawn import spawn_cli

    code, _, err, _ = spawn_cli(
        ["serve", "--host", "0.0.0.0", "--port", "1"], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    )
    assert code == 2
    assert "0.0.0.0" in err and "no API key" in err and "--allow-no-key" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_delete_racing_reads_never_500_and_never_strands_the_name(make_app, tmp_path, monkeypatch, photos) -> None:
    """Case 4: concurrent DELETE with reads gave 500s and left a folder holding only ``.lock`` for good.

    The deletion is slowed down (a pause between the entries it removes, as on a slow or network file
    system) so that readers reliably land inside it.
    """
    real_rmtree = shutil.rmtree

    def slow_rmtree(path, ignore_errors=False, **kw):
        try:
            for entry in sorted(Path(path).iterdir()):
                time.sleep(0.01)
                entry.unlink()
            time.sleep(0.01)
            os.rmdir(path)
        except OSError:
            if not ignore_errors:
                raise
        if Path(path).exists():
            real_rmtree(path, ignore_errors=ignore_errors, **kw)

    monkeypatch.setattr(shutil, "rmtree", slow_rmtree)
    app = make_app(gallery_root=tmp_path)
    contract = app.state.service.contract
    statuses: list[int] = []
    deletes: list[int] = []
    with TestClient(app, raise_server_exceptions=False) as c:
        for round_ in range(12):
            name = "racy"
            assert c.post(f"/v1/galleries/{name}").status_code == 201
            g = Gallery(tmp_path / name, backend="numpy")
            g.enroll_many({f"p{k}": np.eye(512, dtype=np.float32)[k] for k in range(40)}, contract=contract)
            g.close()
            stop = threading.Event()
            seen = threading.Semaphore(0)

            def reader(name: str = name, stop: threading.Event = stop, seen: threading.Semaphore = seen) -> None:
                face = photos["yaoming.jpg"]
                while not stop.is_set():
                    for path in (f"/v1/galleries/{name}", f"/v1/galleries/{name}/identities"):
                        statuses.append(c.get(path).status_code)
                    r = c.post("/v1/identify", data={"gallery": name}, files={"image": ("y.jpg", face)})
                    statuses.append(r.status_code)
                    seen.release()

            threads = [threading.Thread(target=reader) for _ in range(4)]
            for t in threads:
                t.start()
            for _ in range(4):  # the readers are running
                assert seen.acquire(timeout=60)
            deletes.append(c.delete(f"/v1/galleries/{name}").status_code)
            for _ in range(4):  # and keep running after the delete
                assert seen.acquire(timeout=60)
            stop.set()
            for t in threads:
                t.join()
            leftovers = sorted(p.name for p in tmp_path.iterdir())
            assert leftovers == [], f"round {round_}: {leftovers} left behind; statuses {sorted(set(statuses))}"
    assert deletes == [200] * 12, deletes
    assert set(statuses) <= {200, 404}, sorted(set(statuses))
    assert statuses.count(404) >= 12 * 4  # readers saw the deletion as a plain 404
