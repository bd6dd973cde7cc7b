"""``arcface.client.Client`` against a live service on loopback (uvicorn, real HTTP), and its retry on 503."""

from __future__ import annotations

import http.server
import json
import threading

import cv2
import numpy as np
import pytest

from arcface.client import Client, ServiceError
from arcface.face import Face
from arcface.gallery.gallery import SearchResult
from arcface.verify import VerifyResult

KEY = "s3cret-κλειδί"


@pytest.fixture(scope="module")
def keyed_server(make_app, tmp_path_factory):
    pytest.importorskip("uvicorn")
    from arcface.serve.runner import serve_in_thread

    server = serve_in_thread(make_app(gallery_root=tmp_path_factory.mktemp("client-galleries"), api_key=KEY))
    yield server
    server.stop()


def test_client_returns_the_library_results(keyed_server, analyzer, vectron_dir, shared_data):
    c = Client(keyed_server.url, api_key=KEY)
    a, b = vectron_dir / "yaoming.jpg", vectron_dir / "gdp.jpg"
    res = c.verify(a, b)
    ref = analyzer.verify(a, b)
    assert isinstance(res, VerifyResult) and isinstance(res.face_a, Face)
    assert res.similarity == pytest.approx(ref.similarity, abs=1e-5) and res.same is ref.same is False
    assert res.threshold == ref.threshold and res.faces == ref.faces
    faces = c.embed(cv2.imread(str(b)), color="bgr")  # an OpenCV array, said to be BGR
    lib = analyzer.analyze(b)
    assert len(faces) == len(lib) == 5
    assert min(float(f.embedding @ g.embedding) for f, g in zip(faces, lib, strict=True)) > 0.999
    picked = c.verify(b, a, face_a=3)  # a chosen face of the group photo, in embed's order
    np.testing.assert_allclose(picked.face_a.bbox, lib[3].bbox, atol=0.01)
    assert picked.similarity == pytest.approx(float(lib[3].embedding @ analyzer.analyze(a)[0].embedding), abs=1e-5)
    with pytest.raises(ServiceError) as err:
        c.verify(b, a, face_a=9)
    assert err.value.code == "invalid_request" and err.value.field == "face_a"
    # the selection rules of the library, through the service
    group, biden = shared_data / "multi_face" / "obama_and_biden.jpg", shared_data / "face_recognition_by_identity"
    biden = biden / "biden" / "biden.jpg"
    for rule in ("largest", "center", "center_largest"):
        got, want = c.verify(group, biden, select=rule), analyzer.verify(group, biden, select=rule)
        assert got.similarity == pytest.approx(want.similarity, abs=1e-5)
        assert f"the {rule.replace('_', '-')} face was used" in got.notes[0]
    with pytest.raises(ServiceError) as err:
        c.verify(group, biden, select="middle")
    assert err.value.code == "invalid_request" and err.value.field == "select"
    # galleries: create, enrol two people, identify, rename, remove, delete
    people = shared_data / "face_recognition_by_identity"
    c.create_gallery("team")
    c.enroll("team", "obama", [people / "obama" / "obama.jpg", people / "obama" / "obama2.jpg"], {"role": "x"})
    c.enroll("team", "biden", [people / "biden" / "biden.jpg"])
    assert "team" in c.galleries() and {i["name"] for i in c.identities("team")} == {"obama", "biden"}
    answers = c.identify(people / "obama" / "obama1_test.jpg", "team")
    assert len(answers) == 1 and isinstance(answers[0][1], SearchResult) and answers[0][1].identity == "obama"
    c.rename("team", "biden", "joe")
    c.remove("team", "joe")
    assert [i["name"] for i in c.identities("team")] == ["obama"]
    c.delete_gallery("team")
    assert "team" not in c.galleries()


def test_client_errors_carry_the_service_code(keyed_server, vectron_dir):
    with pytest.raises(ServiceError) as err:
        Client(keyed_server.url, api_key="wrong").config()
    assert err.value.status == 401 and err.value.code == "unauthorized"
    c = Client(keyed_server.url, api_key=KEY)
    with pytest.raises(ServiceError) as err:
        c.identify(vectron_dir / "yaoming.jpg", "no-such-gallery")
    assert err.value.status == 404 and err.value.code == "gallery_not_found" and err.value.field == "gallery"
    blank = cv2.imencode(".png", np.full((100, 120, 3), 128, np.uint8))[1].tobytes()
    with pytest.raises(ServiceError) as err:
        c.verify(blank, vectron_dir / "yaoming.jpg")
    assert err.value.status == 422 and err.value.code == "no_face" and err.value.field == "image_a"
    with pytest.raises(ServiceError) as err:
        Client("http://127.0.0.1:9", timeout=2).config()
    assert err.value.code == "unreachable"


def test_client_retries_503_with_backoff():
    hits: list[int] = []

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            hits.append(1)
            status = 503 if len(hits) <= 2 else 200
            body = json.dumps({"error": {"code": "busy", "message": "try later"}} if status == 503 else {"ok": 1})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        assert Client(url, retries=3, backoff=0.01).config() == {"ok": 1} and len(hits) == 3
        hits.clear()
        with pytest.raises(ServiceError) as err:
            Client(url, retries=1, backoff=0.01).config()
        assert err.value.status == 503 and err.value.code == "busy" and len(hits) == 2
    finally:
        srv.shutdown()


def test_every_response_has_a_request_id_and_one_access_log_line(keyed_server, vectron_dir, caplog):
    import urllib.request

    with caplog.at_level("INFO", logger="arcface.access"):
        req = urllib.request.Request(keyed_server.url + "/healthz", headers={"X-Request-ID": "trace-42"})
        with urllib.request.urlopen(req) as resp:
            assert resp.headers["X-Request-ID"] == "trace-42"  # a client's id is kept
        with pytest.raises(ServiceError):
            Client(keyed_server.url, api_key="wrong").verify(vectron_dir / "yaoming.jpg", vectron_dir / "gdp.jpg")
        req = urllib.request.Request(keyed_server.url + "/healthz", headers={"X-Request-ID": "bad id\x01"})
        with urllib.request.urlopen(req) as resp:
            made = resp.headers["X-Request-ID"]
    assert len(made) == 32 and made != "bad id"  # an unsafe id is replaced
    lines = [r.getMessage() for r in caplog.records if r.name == "arcface.access"]
    assert any(line.startswith("GET /healthz 200 ") and line.endswith("id=trace-42") for line in lines)
    denied = [line for line in lines if line.startswith("POST /v1/verify 401 ")]
    assert len(denied) == 1 and KEY not in denied[0] and "wrong" not in denied[0]


def test_client_against_a_separate_arcface_serve_process(tmp_path, analyzer, vectron_dir, shared_data):
    """The README's way: ``arcface serve`` in its own process on loopback (real pack, real HTTP, API key from a
    file), driven by the client; the galleries it writes survive a restart of the process."""
    import os
    import subprocess
    import sys
    import time

    from net import free_port

    pytest.importorskip("uvicorn")
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    root = tmp_path / "galleries"
    people = shared_data / "face_recognition_by_identity"

    logs = []

    def start() -> tuple[subprocess.Popen, Client]:
        port = free_port()
        logs.append(tmp_path / f"serve-{port}.log")
        log = open(logs[-1], "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "arcface", "serve", "--port", str(port), "--gallery-root", str(root),
             "--api-key-file", str(key_file), "--runtime", "onnxruntime", "--precision", "f32",
             "--log-level", "info"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        c = Client(f"http://127.0.0.1:{port}", api_key=KEY, timeout=60)
        deadline = time.monotonic() + 120
        while True:
            try:
                c.config()
                return proc, c
            except ServiceError as exc:
                if exc.code != "unreachable" or proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError((tmp_path / f"serve-{port}.log").read_text()) from exc
                time.sleep(0.3)

    def stop(proc: subprocess.Popen) -> None:
        proc.terminate()
        # uvicorn shuts down on SIGTERM (the app's shutdown closes the galleries), then re-raises the signal
        assert proc.wait(timeout=30) in (0, -15)
        text = logs[-1].read_text()
        assert "Application shutdown complete" in text, text
        assert "POST /v1/verify 200" in text or "POST /v1/identify 200" in text  # one access line per request
        assert KEY not in text  # the key never reaches the log

    proc, c = start()
    try:
        cfg = c.config()
        assert cfg["engine"]["runtime"] == "onnxruntime" and cfg["engine"]["precision"] == "f32"  # the reference
        assert cfg["galleries"]["persistent"] is True
        a, b = vectron_dir / "yaoming.jpg", vectron_dir / "gdp.jpg"
        ref = analyzer.verify(a, b)
        assert c.verify(a, b).similarity == pytest.approx(ref.similarity, abs=1e-5)
        c.create_gallery("staff")
        c.enroll("staff", "obama", [people / "obama" / "obama.jpg", people / "obama" / "obama2.jpg"])
        c.enroll("staff", "biden", [people / "biden" / "biden.jpg"])
        found = {r.identity for _, r in c.identify(shared_data / "multi_face" / "obama_and_biden.jpg", "staff")}
        assert {"obama", "biden"} <= found
        with pytest.raises(ServiceError) as err:
            Client(c.url, api_key="wrong").galleries()
        assert err.value.status == 401
    finally:
        stop(proc)
    proc, c = start()  # a new process on the same gallery folder
    try:
        assert {i["name"]: i["images"] for i in c.identities("staff")} == {"obama": 2, "biden": 1}
        answers = c.identify(people / "obama" / "obama1_test.jpg", "staff")
        assert [r.identity for _, r in answers] == ["obama"]
    finally:
        stop(proc)
