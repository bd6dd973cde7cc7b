"""Video: tracks, identities and events on clips made from real photos, encoded with a real codec.

The clip (640x360, 15 fps, 60 frames, mp4v through OpenCV's FFmpeg) shows three people cut from
../shared/data/face_recognition_by_identity: obama and biden (enrolled in a gallery from *other* photos of
them) and kit_harington (not enrolled). Faces enter and leave, pass each other, one grows (a scale change);
frames 40-42 are blank; every frame went through JPEG at quality 60 first.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("scipy")

from video_clips import FPS, H, N, W, make_clip  # noqa: E402


@pytest.fixture(scope="module")
def clip(analyzer, shared_data: Path, tmp_path_factory) -> dict:
    return make_clip(analyzer, shared_data, tmp_path_factory.mktemp("video"))


def _run(clip: dict, analyzer, detect_every: int):
    from arcface.video import track

    seen: dict[int, set[str]] = {}

    def on_frame(frame, tracks, detected):
        if not detected:
            return
        truth = clip["truth"][frame.index]
        names = list(truth)
        for t in tracks:
            if t.last.frame != frame.index:
                continue
            cx, cy = (t.last.box[0] + t.last.box[2]) / 2, (t.last.box[1] + t.last.box[3]) / 2
            inside = [n for n in names if truth[n][0] <= cx <= truth[n][2] and truth[n][1] <= cy <= truth[n][3]]
            seen.setdefault(t.id, set()).add(inside[0] if len(inside) == 1 else "?")

    events = list(track(clip["path"], analyzer, clip["gallery"], detect_every=detect_every, on_frame=on_frame))
    return events, seen


@pytest.mark.parametrize("detect_every", [1, 3])
def test_tracks_are_pure_and_identified(clip, analyzer, detect_every) -> None:
    events, seen = _run(clip, analyzer, detect_every)
    long = [e for e in events if e.detections >= 5]  # ignore a stray one-frame detection, if any
    assert len(long) == 3, [e.to_dict() for e in events]
    for e in long:  # purity: every detection of a track is the same person
        assert len(seen[e.track]) == 1 and "?" not in seen[e.track], (e.track, seen[e.track])
    by_person = {next(iter(seen[e.track])): e for e in long}
    assert by_person["obama"].identity == "obama" and by_person["biden"].identity == "biden"
    assert by_person["kit_harington"].identity == "unknown"  # not enrolled: open-set answer
    assert by_person["obama"].similarity > 0.3 and by_person["obama"].faces_used >= 5
    # the blank frames 40-42 did not split obama's track (it spans them), and times come from the container
    assert by_person["obama"].start_frame == 0 and by_person["obama"].end_frame >= 57 - detect_every
    assert by_person["obama"].end_time == pytest.approx(by_person["obama"].end_frame / FPS, abs=0.07)
    assert by_person["kit_harington"].start_frame >= 21


def test_cli_writes_events_and_an_annotated_video(clip, tmp_path, capsys) -> None:
    from arcface.cli import main

    events, out = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    code = main(
        [
            "video",
            str(clip["path"]),
            "--gallery",
            str(clip["root"] / "gallery"),
            "--events",
            str(events),
            "--out",
            str(out),
            "--detect-every",
            "2",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert len(lines) == summary["tracks"] >= 3
    assert {
        "track",
        "start_frame",
        "end_frame",
        "start_time",
        "end_time",
        "identity",
        "similarity",
        "faces_used",
    } <= set(lines[0])
    assert {e["identity"] for e in lines if e["detections"] >= 5} == {"obama", "biden", "unknown"}
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N
    cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (H, W, 3)
    cv2.imwrite(str(tmp_path / "frame30.png"), frame)


def test_blur_unknown_hides_only_strangers(clip, tmp_path, capsys) -> None:
    from arcface.cli import main

    out = tmp_path / "blurred.mp4"
    assert (
        main(
            [
                "video",
                str(clip["path"]),
                "--gallery",
                str(clip["root"] / "gallery"),
                "--blur",
                "unknown",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    cap = cv2.VideoCapture(str(out))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 46)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    truth = clip["truth"][46]
    src = cv2.VideoCapture(str(clip["path"]))
    src.set(cv2.CAP_PROP_POS_FRAMES, 46)
    _, orig = src.read()
    src.release()

    def detail(img, box):  # high-frequency energy of the face (the sprite's central 45%): blurring removes most
        x1, y1, x2, y2 = (float(v) for v in box)
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, 0.225 * min(x2 - x1, y2 - y1)
        face = img[int(cy - r) : int(cy + r), int(cx - r) : int(cx + r)]
        return float(np.abs(cv2.Laplacian(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean())

    assert detail(bgr, truth["kit_harington"]) < 0.3 * detail(orig, truth["kit_harington"])  # the stranger
    for name in ("obama", "biden"):  # enrolled: left visible (only the codec's loss)
        assert detail(bgr, truth[name]) > 0.8 * detail(orig, truth[name])


def test_corrupt_video_is_read_up_to_the_damage(clip, analyzer, tmp_path) -> None:
    from arcface.video import open_source

    data = clip["path"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])  # truncated file: its index (moov) may be lost too
    try:
        src = open_source(cut)
        frames = list(src)
    except Exception as exc:  # noqa: BLE001 - only a clear InputError is acceptable
        from arcface.errors import InputError

        assert isinstance(exc, InputError) and "cut.mp4" in str(exc)
        return
    assert len(frames) < N and src.stats.frames == len(frames)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 50)
    from arcface.errors import InputError

    with pytest.raises(InputError, match="garbage.mp4"):
        list(open_source(garbage))


def test_network_stream_reconnects_after_a_disconnect() -> None:
    """An MJPEG-over-HTTP stream on loopback drops after 10 frames, comes back for 10 more, then goes away."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from arcface.video import open_source

    connections: list[int] = []

    class Stream(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            connections.append(1)
            n = len(connections)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(10):
                img = np.full((120, 160, 3), 40 * n + 2 * i, np.uint8)
                jpg = cv2.imencode(".jpg", img)[1].tobytes()
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n".encode()
                self.wfile.write(head + jpg + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01)
            if n >= 2:  # after the second connection the server goes away for good (the port is closed)
                threading.Thread(target=lambda: (server.shutdown(), server.server_close()), daemon=True).start()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    src = open_source(url, reconnects=2, backoff=0.05, timeout=5.0)
    started = time.monotonic()
    frames = list(src)
    thread.join(5)
    assert src.live and len(connections) == 2
    assert 16 <= len(frames) <= 20  # both connections' frames (FFmpeg may drop a partial last one)
    levels = [int(f.image.mean()) for f in frames]
    assert min(levels) < 60 and max(levels) >= 80  # frames of the first (40+) and the second (80+) connection
    assert all(b.time > a.time for a, b in zip(frames, frames[1:]))  # time keeps increasing across reconnects
    assert src.stats.reconnects >= 2 and "gave up" in src.stats.events[-1]
    assert time.monotonic() - started < 30


def test_frames_over_the_pixel_budget_are_refused_before_decoding(clip) -> None:
    """Video frames get the same pixel budget as images (here lowered below the clip's 640x360)."""
    from arcface.errors import InputError
    from arcface.video import open_source

    with pytest.raises(InputError, match=r"clip\.mp4: frames are 640x360 = 0\.2 megapixels, over the limit of 0\.1"):
        list(open_source(clip["path"], max_pixels=100_000))
    assert len(list(open_source(clip["path"], max_pixels=640 * 360))) == N
