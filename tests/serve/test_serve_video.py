"""The service's video endpoints: an uploaded clip, and a stream monitor on a loopback MJPEG stream."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytest.importorskip("scipy")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from arcface.gallery import Gallery  # noqa: E402
from video_clips import MjpegCamera, make_clip  # noqa: E402


def test_uploaded_clip_gives_identified_tracks(make_app, analyzer, shared_data, tmp_path) -> None:
    clip = make_clip(analyzer, shared_data, tmp_path / "clip")
    root = tmp_path / "galleries"
    app = make_app(gallery_root=root)
    with TestClient(app) as c:
        assert c.post("/v1/galleries/people").status_code == 201
        src = Gallery(clip["root"] / "gallery", backend="numpy")
        dst = Gallery(root / "people", backend="numpy")
        for name in src.names:
            dst.enroll(name, src.embeddings(name), contract=app.state.service.contract)
        data = clip["path"].read_bytes()
        r = c.post("/v1/video", data={"gallery": "people", "detect_every": "3"}, files={"video": ("c.mp4", data)})
        assert r.status_code == 200, r.text
        body = r.json()
        names = sorted(e["identity"] for e in body["events"] if e["detections"] >= 5)
        assert names == ["biden", "obama", "unknown"] and body["frames"] == 60
        bad = c.post("/v1/video", files={"video": ("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500)})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_video"
        assert c.post("/v1/video", data={"gallery": "nobody"}, files={"video": ("c.mp4", data)}).status_code == 404


def test_stream_monitor_runs_in_the_background_and_stops(make_app, wheel_images, tmp_path) -> None:
    cam = MjpegCamera(wheel_images["yaoming.jpg"])
    try:
        with TestClient(make_app(gallery_root=tmp_path)) as c:  # no --monitor-source: monitors are off
            r = c.post("/v1/monitors", json={"source": cam.url})
            assert r.status_code == 403 and r.json()["error"]["code"] == "monitors_disabled"
        app = make_app(gallery_root=tmp_path, monitor_sources=[cam.url.rsplit("/", 1)[0] + "/"])
        with TestClient(app) as c:
            r = c.post("/v1/monitors", json={"source": "http://10.0.0.1/secret"})  # not under the allowed prefix
            assert r.status_code == 403 and r.json()["error"]["code"] == "source_not_allowed"
            r = c.post("/v1/monitors", json={"source": cam.url, "detect_every": 2})
            assert r.status_code == 201, r.text
            mid = r.json()["id"]
            deadline = time.monotonic() + 60
            while c.get(f"/v1/monitors/{mid}").json()["frames"] < 10:
                assert time.monotonic() < deadline, c.get(f"/v1/monitors/{mid}").json()
                time.sleep(0.2)
            assert c.get(f"/v1/monitors/{mid}").json()["state"] == "running"
            with c.stream("GET", f"/v1/monitors/{mid}/preview.mjpeg?seconds=3") as preview:
                assert preview.headers["content-type"].startswith("multipart/x-mixed-replace")
                first = next(preview.iter_bytes())
            assert first.startswith(b"--frame") and b"\xff\xd8" in first  # a JPEG part
            stopped = c.delete(f"/v1/monitors/{mid}").json()
            assert stopped["state"] == "stopped" and stopped["events"] >= 1  # the live track ended with the stream
            assert c.get(f"/v1/monitors/{mid}").status_code == 404
            assert all(not t.name.startswith("monitor-") for t in threading.enumerate())
    finally:
        cam.close()
