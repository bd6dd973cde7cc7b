"""Video and camera streams: frames, face tracks, per-track identity, events, annotated or blurred output.

* :func:`track`: ``for event in arcface.video.track("clip.mp4", gallery=g)`` yields a :class:`TrackEvent` per
  finished face track (who, from when to when, how sure, from how many faces);
* :func:`process_video`: the ``arcface video`` command (annotated/blurred video, JSON-lines events);
* :mod:`arcface.video.sources`: files, frame folders, webcams and network streams (reconnecting);
* :mod:`arcface.video.tracker`: association, face quality, pooling and identity hysteresis.
"""

from arcface.video.run import TrackEvent, process_video, track
from arcface.video.sources import Frame, FrameSource, open_source

__all__ = ["Frame", "FrameSource", "TrackEvent", "open_source", "process_video", "track"]
