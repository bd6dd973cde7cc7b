"""Synthetic face clips for the video tests, made from the labelled photos in ../shared/data (see test_video.py),
and a loopback MJPEG camera."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from arcface.face import largest_face
from arcface.gallery import EmbeddingContract, Gallery
from arcface.imageio import load_image

W, H, FPS, N = 640, 360, 15.0, 60
BLANK = range(40, 43)


def _sprite(analyzer, photo: Path, height: int) -> np.ndarray:
    image = load_image(photo)
    x1, y1, x2, y2 = largest_face(analyzer.analyze(image, embed=False)).bbox
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.9
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    crop = image[b : int(min(image.shape[0], b + side)), a : int(min(image.shape[1], a + side))]
    return cv2.resize(crop, (int(height * crop.shape[1] / crop.shape[0]), height), interpolation=cv2.INTER_AREA)


def _paths(frame: int) -> dict[str, tuple[float, float, float] | None]:
    """Each person's (centre x, centre y, scale) at ``frame``, or None when absent."""
    t = frame / (N - 1)
    return {
        "obama": (60 + 480 * t, 62, 1.0),  # top lane, left to right
        # bottom lane, right to left (passes obama), growing from 0.8x to 1.3x: a scale change; leaves at 52
        "biden": (560 - 440 * (frame - 8) / 44, 290, 0.8 + 0.5 * (frame - 8) / 44) if 8 <= frame <= 52 else None,
        "kit_harington": (600 - 300 * (frame - 22) / 37, 176, 1.0) if frame >= 22 else None,  # enters late
    }


def make_clip(analyzer, shared_data: Path, root: Path) -> dict:
    people = shared_data / "face_recognition_by_identity"
    sprites = {
        "obama": _sprite(analyzer, people / "obama" / "obama2.jpg", 100),
        "biden": _sprite(analyzer, people / "biden" / "biden2.jpg", 100),
        "kit_harington": _sprite(analyzer, people / "kit_harington" / "john2.jpeg", 100),
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    truth: list[dict[str, np.ndarray]] = []
    for f in range(N):
        canvas = np.full((H, W, 3), (70, 90, 110), np.uint8)
        boxes = {}
        if f not in BLANK:
            for name, where in _paths(f).items():
                if where is None:
                    continue
                cx, cy, s = where
                sp = sprites[name]
                sp = cv2.resize(sp, (int(sp.shape[1] * s), int(sp.shape[0] * s)), interpolation=cv2.INTER_AREA)
                x0, y0 = int(cx - sp.shape[1] / 2), int(cy - sp.shape[0] / 2)
                xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + sp.shape[1]), min(H, y0 + sp.shape[0])
                if xb <= xa or yb <= ya:
                    continue
                canvas[ya:yb, xa:xb] = sp[ya - y0 : yb - y0, xa - x0 : xb - x0]
                boxes[name] = np.array([xa, ya, xb, yb], np.float32)
        ok, jpg = cv2.imencode(".jpg", canvas[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
        writer.write(cv2.imdecode(jpg, cv2.IMREAD_COLOR))
        truth.append(boxes)
    writer.release()
    gallery = Gallery(root / "gallery", backend="numpy")
    contract = EmbeddingContract.from_analyzer(analyzer)
    for name, photo in (("obama", people / "obama" / "obama.jpg"), ("biden", people / "biden" / "biden.jpg")):
        gallery.enroll(name, largest_face(analyzer.analyze(photo)).embedding, contract=contract)
    return {"path": path, "truth": truth, "gallery": gallery, "root": root}


class MjpegCamera:
    """An MJPEG-over-HTTP camera on loopback showing one face, until stopped."""

    def __init__(self, image_rgb: np.ndarray) -> None:
        jpg = cv2.imencode(".jpg", image_rgb[..., ::-1])[1].tobytes()
        stopping = self.stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n".encode()
                while not stopping.is_set():
                    try:
                        self.wfile.write(head + jpg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.04)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
