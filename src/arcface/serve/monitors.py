"""Stream monitors of the service: background face tracking of network streams, independent of any browser.

A monitor runs :func:`arcface.video.track` over one stream in a daemon thread: it keeps the last ``max_events``
track events, the count of frames, the source's reconnection log and the latest annotated frame (JPEG, for the
MJPEG preview). It runs until ``DELETE`` or the service stops; closing the browser changes nothing.

The service connects to the URL a client gives, so sources are restricted to the prefixes the operator allowed
at start-up (``--monitor-source rtsp://cameras.local/``); with none allowed, monitors are refused. This keeps a
client from making the service fetch arbitrary internal addresses.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from arcface.serve.errors import ApiError
from arcface.video.sources import Frame, FrameSource, open_source

MAX_MONITORS = 8


@dataclass
class Monitor:
    """One running (or finished) stream monitor."""

    id: str
    source: str
    gallery: str | None
    detect_every: int
    started: float = field(default_factory=time.time)
    frames: int = 0
    state: str = "starting"
    error: str | None = None
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))
    total_events: int = 0
    preview: bytes | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    frame_source: FrameSource | None = None
    preview_ready: threading.Condition = field(default_factory=threading.Condition)

    def describe(self) -> dict[str, Any]:
        src = self.frame_source.stats.to_dict() if self.frame_source is not None else {}
        return {
            "id": self.id,
            "source": self.source,
            "gallery": self.gallery,
            "detect_every": self.detect_every,
            "state": self.state,
            "error": self.error,
            "frames": self.frames,
            "events": self.total_events,
            "reconnects": src.get("reconnects", 0),
            "source_log": src.get("events", [])[-10:],
            "started": self.started,
        }


class MonitorRegistry:
    """Start, list, read and stop monitors; ``analyze`` is the service's analyzer, galleries its registry."""

    def __init__(self, analyzer: Any, galleries: Any, allowed_sources: tuple[str, ...] = ()) -> None:
        self.analyzer = analyzer
        self.galleries = galleries
        self.allowed = tuple(s for s in allowed_sources if s)
        self._lock = threading.Lock()
        self._monitors: dict[str, Monitor] = {}

    def start(self, source: str, gallery: str | None = None, detect_every: int = 5) -> Monitor:
        if not self.allowed:
            raise ApiError(403, "monitors_disabled", "stream monitors are off: start the service with --monitor-source")
        if not any(source.startswith(prefix) for prefix in self.allowed):
            raise ApiError(
                403,
                "source_not_allowed",
                f"source {source!r} is not under an allowed --monitor-source prefix",
                "source",
            )
        if not 1 <= detect_every <= 100:
            raise ApiError(422, "invalid_request", "detect_every must be in [1, 100]", "detect_every")
        g = self.galleries.get(gallery) if gallery else None  # 404 now rather than in the thread
        if g is not None:
            g.refresh()
        with self._lock:
            running = [m for m in self._monitors.values() if m.state in ("starting", "running")]
            if len(running) >= MAX_MONITORS:
                raise ApiError(429, "too_many_monitors", f"at most {MAX_MONITORS} monitors run at once")
            mon = Monitor(secrets.token_hex(6), source, gallery, detect_every)
            self._monitors[mon.id] = mon
        mon.thread = threading.Thread(target=self._run, args=(mon, g), daemon=True, name=f"monitor-{mon.id}")
        mon.thread.start()
        return mon

    def _run(self, mon: Monitor, gallery: Any) -> None:
        from arcface.video import track
        from arcface.video.run import draw_tracks, visible_tracks

        def on_frame(frame: Frame, tracks: list, detected: bool) -> None:
            mon.frames += 1
            mon.state = "running"
            image = draw_tracks(frame.image, *visible_tracks(tracks, frame.index, detected), similarity=False)
            ok, jpg = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                with mon.preview_ready:
                    mon.preview = jpg.tobytes()
                    mon.preview_ready.notify_all()

        try:
            mon.frame_source = open_source(mon.source, reconnects=5, backoff=1.0, stop=mon.stop)
            for event in track(
                mon.frame_source, self.analyzer, gallery, detect_every=mon.detect_every, on_frame=on_frame
            ):
                mon.events.append(event.to_dict())
                mon.total_events += 1
            mon.state = "stopped" if mon.stop.is_set() else "ended"
        except Exception as exc:  # noqa: BLE001 - a monitor reports its failure instead of dying silently
            mon.state, mon.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            with mon.preview_ready:
                mon.preview_ready.notify_all()

    def get(self, monitor_id: str) -> Monitor:
        with self._lock:
            mon = self._monitors.get(monitor_id)
        if mon is None:
            raise ApiError(404, "monitor_not_found", f"no monitor {monitor_id!r}", "monitor")
        return mon

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.describe() for m in self._monitors.values()]

    def events(self, monitor_id: str, since: int = 0) -> dict[str, Any]:
        """Events numbered from 0 in arrival order; ``since`` skips those already read (the oldest may be gone)."""
        mon = self.get(monitor_id)
        events = list(mon.events)
        first = mon.total_events - len(events)
        return {"monitor": mon.id, "next": mon.total_events, "events": events[max(0, since - first) :]}

    def preview(self, monitor_id: str, max_seconds: float = 60.0) -> Iterator[bytes]:
        """multipart/x-mixed-replace parts with the latest annotated frame, until stopped or ``max_seconds``."""
        mon = self.get(monitor_id)
        end = time.monotonic() + max_seconds
        last = None
        while time.monotonic() < end and mon.state in ("starting", "running"):
            with mon.preview_ready:
                if mon.preview is last:
                    mon.preview_ready.wait(timeout=1.0)
                jpg = mon.preview
            if jpg is None or jpg is last:
                continue
            last = jpg
            yield (
                b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                + str(len(jpg)).encode()
                + b"\r\n\r\n"
                + jpg
                + b"\r\n"
            )

    def stop(self, monitor_id: str, timeout: float = 15.0) -> dict[str, Any]:
        mon = self.get(monitor_id)
        mon.stop.set()
        if mon.thread is not None:
            mon.thread.join(timeout)
        with self._lock:
            self._monitors.pop(mon.id, None)
        return mon.describe()

    def close(self) -> None:
        with self._lock:
            ids = list(self._monitors)
        for i in ids:
            self.stop(i, timeout=5.0)
