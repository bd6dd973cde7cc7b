"""Frames with timestamps from a video file, a folder of frames, a webcam or a network stream.

:func:`open_source` turns a source string into a :class:`FrameSource`, an iterator of :class:`Frame`:

* a video file (any container and codec FFmpeg reads, through OpenCV's FFmpeg backend): timestamps come from
  the container (``CAP_PROP_POS_MSEC``), not from frame counts;
* a folder of images (sorted by name), at ``fps`` frames per second;
* a webcam index (``"0"``), or a network URL (``rtsp://``, ``http://``, ``https://``): a stream that drops, or
  stalls for ``timeout`` seconds, is reopened with exponential back-off (``reconnects`` failed attempts in a row
  at most) and each reconnection is reported.

A frame that fails to decode is skipped and counted (``FrameSource.stats``), never fatal; a file whose frames
stop decoding for good ends the iteration with what was read. Frames larger than ``max_pixels`` (the image
limit, 80 megapixels) are refused from the size the container declares, before any is decoded. Setting the
``stop`` event ends any source at the next frame (or during a reconnection wait). Frames are uint8 RGB
``(H, W, 3)``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from arcface.errors import InputError
from arcface.imageio import MAX_PIXELS

log = logging.getLogger("arcface.video")

_URL = re.compile(r"^(rtsp|rtmp|http|https|udp|tcp)://", re.IGNORECASE)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its position, its time in seconds from the start, and its pixels (uint8 RGB)."""

    index: int
    time: float
    image: np.ndarray


@dataclass
class SourceStats:
    """What happened while reading: frames delivered, frames that failed to decode, reconnections."""

    frames: int = 0
    corrupt: int = 0
    reconnects: int = 0
    events: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"frames": self.frames, "corrupt": self.corrupt, "reconnects": self.reconnects, "events": self.events}


class FrameSource:
    """Iterator of :class:`Frame` over one source (see the module docstring); ``stats`` fills as it goes."""

    def __init__(
        self,
        source: str,
        *,
        fps: float = 25.0,
        reconnects: int = 5,
        backoff: float = 0.5,
        max_consecutive_failures: int = 25,
        timeout: float = 10.0,
        stop: threading.Event | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.source = str(source)
        self.fps = float(fps)
        self.reconnects = int(reconnects)
        self.backoff = float(backoff)
        self.max_failures = int(max_consecutive_failures)
        self.timeout_ms = int(timeout * 1000)
        self.stop = stop
        self.max_pixels = int(max_pixels)
        self.stats = SourceStats()
        #: Frame rate the container or stream reports, once opened (``None``: not reported, or a folder).
        self.native_fps: float | None = None
        self.kind = _kind(self.source)
        if self.kind == "file" and not Path(self.source).is_file():
            raise InputError(f"{self.source}: no such video file")
        if self.kind == "folder" and not _frame_files(Path(self.source)):
            raise InputError(f"{self.source}: folder holds no image frames")

    @property
    def live(self) -> bool:
        """True for webcams and network streams (no end, reconnection on failure)."""
        return self.kind in ("webcam", "stream")

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "folder":
            yield from self._folder()
        else:
            yield from self._capture()

    def _folder(self) -> Iterator[Frame]:
        from arcface.imageio import load_image

        for i, path in enumerate(_frame_files(Path(self.source))):
            if self.stop is not None and self.stop.is_set():
                return
            try:
                image = load_image(path)
            except InputError as exc:
                self.stats.corrupt += 1
                log.warning("skipped frame %s: %s", path.name, exc)
                continue
            self.stats.frames += 1
            yield Frame(i, i / self.fps, image)

    def _open(self) -> cv2.VideoCapture:
        if self.kind == "webcam":
            return cv2.VideoCapture(int(self.source))
        if self.kind == "stream":  # a stalled stream is a failure after `timeout` seconds, then reconnected
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
            return cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(self.source, cv2.CAP_FFMPEG)

    def _capture(self) -> Iterator[Frame]:
        cap = self._open()
        self._check_size(cap)
        reported = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        self.native_fps = float(reported) if 1.0 <= reported <= 240.0 else None
        if not cap.isOpened() and not self.live:
            raise InputError(f"{self.source}: not a readable video (FFmpeg could not open it)")
        index, attempts, failures = 0, 0, 0
        last_time = -1.0
        try:
            while self.stop is None or not self.stop.is_set():
                ok = cap.isOpened() and cap.grab()
                if ok:
                    ok, bgr = cap.retrieve()
                    ok = ok and bgr is not None and bgr.size > 0
                if ok:
                    failures, attempts = 0, 0
                    msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                    t = msec / 1000.0 if msec and msec > 0 else index / self.fps
                    if t <= last_time:  # containers without timestamps, or a restarted stream
                        t = last_time + 1.0 / self.fps
                    last_time = t
                    self.stats.frames += 1
                    yield Frame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    index += 1
                    continue
                if not self.live:
                    # a file: a bad packet is skipped; the end of the file (or of its readable part) ends it
                    failures += 1
                    total = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
                    if failures > self.max_failures or (total and index + failures >= total):
                        break
                    self.stats.corrupt += 1
                    continue
                # a live source dropped or stalled: reopen with back-off
                if attempts >= self.reconnects:
                    self.stats.events.append(f"gave up after {attempts} reconnection attempts")
                    log.warning("%s: gave up after %d reconnection attempts", self.source, attempts)
                    break
                delay = self.backoff * (2**attempts)
                attempts += 1
                self.stats.reconnects += 1
                msg = f"stream lost at frame {index}; reconnecting in {delay:.1f} s (attempt {attempts})"
                self.stats.events.append(msg)
                log.warning("%s: %s", self.source, msg)
                cap.release()
                if self.stop is not None:
                    if self.stop.wait(delay):
                        break
                else:
                    time.sleep(delay)
                cap = self._open()
                self._check_size(cap)
        finally:
            cap.release()

    def _check_size(self, cap: cv2.VideoCapture) -> None:
        """Refuse frames over ``max_pixels`` (as for images) from the size the container declares, before decoding."""
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > self.max_pixels:
            cap.release()
            raise InputError(
                f"{self.source}: frames are {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
                f"{self.max_pixels / 1e6:.1f} (raise max_pixels if intended)"
            )


def _kind(source: str) -> str:
    if source.isdigit():
        return "webcam"
    if _URL.match(source):
        return "stream"
    if Path(source).is_dir():
        return "folder"
    return "file"


def _frame_files(folder: Path) -> list[Path]:
    from arcface.imageio import IMAGE_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def open_source(source: str | Path, **options) -> FrameSource:
    """A :class:`FrameSource` for a file path, a folder, a webcam index or a stream URL."""
    return FrameSource(str(source), **options)
