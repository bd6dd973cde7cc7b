"""Video composition: frames -> detect every N frames -> track -> pooled identity -> events and output video.

:func:`track` is the Python API (``for event in arcface.video.track("clip.mp4", gallery=g)``); it yields one
:class:`TrackEvent` per face track when the track ends (and for every live track at the end of the input).
:func:`process_video` adds what the ``arcface video`` command writes: an annotated (or blurred) copy of the
video and a JSON-lines file of events.

The detector runs on every ``detect_every``-th frame; between those frames tracks keep moving at their last
velocity, so the drawn boxes and the blurred regions follow the faces.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.video.sources import Frame, FrameSource, open_source
from arcface.video.tracker import UNKNOWN, Track, Tracker

BLUR_MODES = ("none", "all", "unknown")


@dataclass(frozen=True)
class TrackEvent:
    """A finished face track and who it is (``identity`` is ``"unknown"`` below the gallery's threshold).

    Times are seconds from the start of the video; ``similarity`` is the cosine of the track's pooled embedding
    with the identity's template; ``faces_used`` is how many faces were pooled; ``decisions`` lists every
    identification (frame, proposed identity, cosine, whether it was taken).
    """

    track: int
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    identity: str
    similarity: float | None
    faces_used: int
    detections: int
    decisions: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_time": round(self.start_time, 3),
            "end_time": round(self.end_time, 3),
            "identity": self.identity,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "faces_used": self.faces_used,
            "detections": self.detections,
            "decisions": self.decisions,
        }


def _event(t: Track) -> TrackEvent:
    return TrackEvent(
        track=t.id,
        start_frame=t.first.frame,
        end_frame=t.last.frame,
        start_time=t.first.time,
        end_time=t.last.time,
        identity=t.identity,
        similarity=t.similarity,
        faces_used=len(t.pool),
        detections=t.hits,
        decisions=[d.to_dict() for d in t.decisions],
    )


def gallery_identifier(
    gallery: Any, threshold: float | None = None
) -> Callable[[np.ndarray], tuple[str, float | None]]:
    """``embedding -> (identity, cosine)`` against a :class:`arcface.gallery.Gallery` (open-set threshold)."""

    def identify(embedding: np.ndarray) -> tuple[str, float | None]:
        res = gallery.search(embedding, top_k=1, threshold=threshold)
        return res.identity, res.similarity

    return identify


FrameCallback = Callable[[Frame, list[Track], bool], None]


def track(
    source: str | Path | FrameSource,
    analyzer: Any = None,
    gallery: Any = None,
    *,
    detect_every: int = 1,
    max_seconds: float | None = None,
    threshold: float | None = None,
    on_frame: FrameCallback | None = None,
    tracker_options: dict[str, Any] | None = None,
) -> Iterator[TrackEvent]:
    """Track and identify the faces of a video; yields a :class:`TrackEvent` as each track ends.

    Args:
        source: a file, a folder of frames, a webcam index or a stream URL (see :mod:`arcface.video.sources`).
        analyzer: a :class:`arcface.pipeline.FaceAnalyzer` (default: the default pack).
        gallery: identify tracks against this gallery (``None``: every identity is ``"unknown"``).
        detect_every: run the detector on every N-th frame (1: every frame).
        max_seconds: stop after this much video time.
        threshold: cosine threshold of identification (default: the gallery's).
        on_frame: called with every frame, the live tracks, and whether the detector ran on it.
        tracker_options: keyword arguments of :class:`arcface.video.tracker.Tracker`.
    """
    if detect_every < 1:
        raise InputError(f"detect_every must be at least 1, got {detect_every}")
    if analyzer is None:
        from arcface.pipeline import FaceAnalyzer

        analyzer = FaceAnalyzer()
    frames = source if isinstance(source, FrameSource) else open_source(source)
    identify = gallery_identifier(gallery, threshold) if gallery is not None else None
    tracker = Tracker(identify, **(tracker_options or {}))
    for frame in frames:
        if max_seconds is not None and frame.time > max_seconds:
            break
        detected = frame.index % detect_every == 0
        if detected:
            faces = analyzer.analyze(frame.image, fallbacks=False)  # most frames of a stream hold no face
            for t in tracker.update(frame.index, frame.time, faces):
                yield _event(t)
        if on_frame is not None:
            on_frame(frame, tracker.tracks, detected)
    for t in tracker.finish():
        yield _event(t)


def process_video(
    source: str | Path,
    analyzer: Any = None,
    gallery: Any = None,
    *,
    out: str | Path | None = None,
    events: str | Path | None = None,
    blur: str = "none",
    exempt: Any = None,
    detect_every: int = 1,
    max_seconds: float | None = None,
    threshold: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run :func:`track` and write the outputs of ``arcface video``; returns a summary.

    Args:
        out: write the video with boxes, track ids and names drawn (or faces blurred) here (``.mp4``/``.avi``).
        events: write one JSON object per finished track here (JSON lines).
        blur: ``"none"``, ``"all"`` (every face) or ``"unknown"`` (faces not identified in ``gallery`` or ``exempt``).
        exempt: a gallery of people who stay visible in blur mode (identified against it as well).
    """
    import cv2

    from arcface.draw import blur_regions

    if blur not in BLUR_MODES:
        raise InputError(f"blur must be one of {', '.join(BLUR_MODES)}, got {blur!r}")
    frames = open_source(source)
    writer = None
    events_fh = open(events, "w", encoding="utf-8") if events else None  # noqa: SIM115 - closed below
    exempt_id = gallery_identifier(exempt, None) if exempt is not None else None
    exempt_names: dict[int, str] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="frame", desc="video", leave=False)
    counts = {"frames": 0, "tracks": 0}
    started = time.perf_counter()

    def on_frame(frame: Frame, tracks: list[Track], detected: bool) -> None:
        nonlocal writer
        counts["frames"] += 1
        if bar is not None:
            bar.update(1)
        if out is None:
            return
        live, boxes = visible_tracks(tracks, frame.index, detected)
        image = frame.image
        if exempt_id is not None and detected:
            for t in live:
                if t.last.frame == frame.index:
                    exempt_names[t.id] = exempt_id(t.pooled())[0]
        if blur != "none":
            hide = [
                b
                for t, b in zip(live, boxes, strict=True)
                if blur == "all" or (t.identity == UNKNOWN and exempt_names.get(t.id, UNKNOWN) == UNKNOWN)
            ]
            image = blur_regions(image, hide)
        else:
            image = draw_tracks(image, live, boxes)
        if writer is None:
            h, w = image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if str(out).lower().endswith(".mp4") else "MJPG"))
            writer = cv2.VideoWriter(str(out), fourcc, frames.native_fps or frames.fps, (w, h))
            if not writer.isOpened():
                raise InputError(f"{out}: cannot write a video there (use .mp4 or .avi)")
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    found: list[dict[str, Any]] = []
    try:
        for ev in track(
            frames,
            analyzer,
            gallery,
            detect_every=detect_every,
            max_seconds=max_seconds,
            threshold=threshold,
            on_frame=on_frame,
        ):
            counts["tracks"] += 1
            found.append(ev.to_dict())
            if events_fh is not None:
                events_fh.write(json.dumps(ev.to_dict()) + "\n")
                events_fh.flush()
    finally:
        if writer is not None:
            writer.release()
        if events_fh is not None:
            events_fh.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    return {
        "frames": counts["frames"],
        "tracks": counts["tracks"],
        "events": found,
        "source": frames.stats.to_dict(),
        "seconds": round(seconds, 3),
        "fps": round(counts["frames"] / seconds, 2) if seconds > 0 else None,
    }


def visible_tracks(tracks: list[Track], frame: int, detected: bool) -> tuple[list[Track], list[np.ndarray]]:
    """The tracks to show at ``frame`` (on a detector frame, those seen in it) and their boxes there (pixels)."""
    live = [t for t in tracks if t.misses == 0 or not detected]
    return live, [t.predicted_box(frame) for t in live]


def draw_tracks(image: np.ndarray, tracks: list[Track], boxes: list[np.ndarray], similarity: bool = True) -> np.ndarray:
    """A copy of ``image`` (uint8 RGB) with each track's box, id and identity (and cosine) in its colour."""
    from arcface.draw import draw_labelled_boxes, track_color

    labels = [
        f"#{t.id} {t.identity}" + (f" {t.similarity:.2f}" if similarity and t.similarity is not None else "")
        for t in tracks
    ]
    return draw_labelled_boxes(image, boxes, labels, [track_color(t.id) for t in tracks])
