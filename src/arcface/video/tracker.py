"""Face tracks across frames: association, a bounded pool of each track's best faces, identity with hysteresis.

Association (on frames where the detector ran): each live track's box is predicted at constant velocity, and
detections are assigned to tracks by scipy's Hungarian solver (``linear_sum_assignment``) on the cost
``1 - (iou_weight * IoU + (1 - iou_weight) * max(cosine, 0))`` between the detection and the track's pooled
embedding. A pair is allowed only when IoU >= ``min_iou`` or cosine >= ``min_cosine`` (a person who moved far
between two detection frames is still matched by face). Unmatched detections start tracks; a track unmatched
for more than ``max_misses`` detection frames ends.

Each track keeps its ``pool_size`` best faces by :func:`face_quality` (detection score x face size x frontal
pose from the 5 landmarks) and identifies their quality-weighted, L2-normalised mean embedding. Its identity
changes only when the same new answer wins ``confirm`` detection frames in a row (hysteresis); every decision
is kept in ``Track.decisions`` (frame, proposed identity, cosine), so an identity can be explained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcface.detect.nms import iou_matrix
from arcface.errors import require
from arcface.face import nose_offset

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Observation:
    """One face in one frame: where (pixels), how sure, its landmarks and unit embedding, its quality in [0, 1]."""

    frame: int
    time: float
    box: np.ndarray
    score: float
    kps: np.ndarray
    embedding: np.ndarray
    quality: float


def face_quality(score: float, box: np.ndarray, kps: np.ndarray) -> float:
    """Quality in ``[0, 1]``: detection score x size (saturating at 112 px) x frontal pose.

    Pose comes from the landmarks (:func:`arcface.face.nose_offset`: 0 for a frontal face, about 0.5 or more in
    profile): ``pose = max(0, 1 - 2 * |offset|)``.
    """
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    size = min(1.0, max(0.0, min(w, h)) / 112.0)
    pose = max(0.0, 1.0 - 2.0 * abs(nose_offset(kps)))
    return float(score) * size * (0.5 + 0.5 * pose)


@dataclass
class Decision:
    """One identification of a track: at which frame, the proposed identity, its cosine, whether it was taken."""

    frame: int
    proposed: str
    similarity: float | None
    taken: bool

    def to_dict(self) -> dict:
        sim = None if self.similarity is None else round(self.similarity, 4)
        return {"frame": self.frame, "proposed": self.proposed, "similarity": sim, "taken": self.taken}


@dataclass(eq=False)
class Track:
    """A face followed across frames (see the module docstring); tracks compare by identity."""

    id: int
    first: Observation
    last: Observation
    pool: list[Observation] = field(default_factory=list)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    misses: int = 0
    hits: int = 1
    identity: str = UNKNOWN
    similarity: float | None = None
    decisions: list[Decision] = field(default_factory=list)
    _pending: tuple[str, int] = (UNKNOWN, 0)

    def predicted_box(self, frame: int) -> np.ndarray:
        """The box at ``frame`` by constant velocity from the last observation (pixels)."""
        return self.last.box + self.velocity * (frame - self.last.frame)

    def add(self, obs: Observation, pool_size: int) -> None:
        gap = max(1, obs.frame - self.last.frame)
        self.velocity = ((obs.box - self.last.box) / gap).astype(np.float32)
        self.last, self.misses, self.hits = obs, 0, self.hits + 1
        self.pool.append(obs)
        self.pool.sort(key=lambda o: -o.quality)
        del self.pool[pool_size:]

    def pooled(self) -> np.ndarray:
        """Quality-weighted mean of the pool's embeddings, L2-normalised (float32 ``(D,)``)."""
        w = np.array([max(o.quality, 1e-3) for o in self.pool], np.float32)
        v = (np.stack([o.embedding for o in self.pool]) * w[:, None]).sum(0)
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    def identify(self, proposed: str, similarity: float | None, frame: int, confirm: int) -> None:
        """Hysteresis: take ``proposed`` once it has won ``confirm`` identifications in a row."""
        if proposed == self.identity:
            self.similarity, self._pending = similarity, (proposed, 0)
            self.decisions.append(Decision(frame, proposed, similarity, True))
            return
        name, count = self._pending
        count = count + 1 if name == proposed else 1
        taken = count >= confirm
        if taken:
            self.identity, self.similarity, count = proposed, similarity, 0
        self._pending = (proposed, count)
        self.decisions.append(Decision(frame, proposed, similarity, taken))


Identifier = Callable[[np.ndarray], tuple[str, float | None]]


class Tracker:
    """Associates per-frame detections into :class:`Track` objects; see the module docstring for the rules."""

    def __init__(
        self,
        identify: Identifier | None = None,
        *,
        iou_weight: float = 0.5,
        min_iou: float = 0.2,
        min_cosine: float = 0.4,
        max_misses: int = 3,
        pool_size: int = 8,
        confirm: int = 2,
    ) -> None:
        self._lsa = require("scipy.optimize", "video").linear_sum_assignment
        self.identify_fn = identify
        self.iou_weight, self.min_iou, self.min_cosine = float(iou_weight), float(min_iou), float(min_cosine)
        self.max_misses, self.pool_size, self.confirm = int(max_misses), int(pool_size), int(confirm)
        self.tracks: list[Track] = []
        self._next = 0

    def update(self, frame: int, time: float, faces: list[Any]) -> list[Track]:
        """Feed the faces detected at ``frame`` (objects with ``bbox``, ``score``, ``kps``, ``embedding``).

        Returns the tracks that ended at this update (unmatched for more than ``max_misses`` updates).
        """
        obs = [
            Observation(
                frame,
                time,
                np.asarray(f.bbox, np.float32),
                float(f.score),
                np.asarray(f.kps, np.float32),
                np.asarray(f.embedding, np.float32),
                face_quality(f.score, f.bbox, f.kps),
            )
            for f in faces
        ]
        matched_t: set[int] = set()
        matched_o: set[int] = set()
        if self.tracks and obs:
            pred = np.stack([t.predicted_box(frame) for t in self.tracks])
            iou = iou_matrix(pred, np.stack([o.box for o in obs]))
            cos = np.stack([t.pooled() for t in self.tracks]) @ np.stack([o.embedding for o in obs]).T
            cost = 1.0 - (self.iou_weight * iou + (1 - self.iou_weight) * np.maximum(cos, 0.0))
            allowed = (iou >= self.min_iou) | (cos >= self.min_cosine)
            cost = np.where(allowed, cost, 1e6)
            rows, cols = self._lsa(cost)
            for r, c in zip(rows, cols, strict=True):
                if allowed[r, c]:
                    self.tracks[r].add(obs[c], self.pool_size)
                    matched_t.add(r)
                    matched_o.add(c)
        ended = []
        for i, t in enumerate(self.tracks):
            if i not in matched_t:
                t.misses += 1
                if t.misses > self.max_misses:
                    ended.append(t)
        for j, o in enumerate(obs):
            if j not in matched_o:
                self.tracks.append(Track(self._next, o, o, [o]))
                self._next += 1
        gone = {id(t) for t in ended}
        self.tracks = [t for t in self.tracks if id(t) not in gone]
        if self.identify_fn is not None:
            for t in self.tracks:
                if t.last.frame == frame:  # seen now: re-identify its pooled embedding
                    name, sim = self.identify_fn(t.pooled())
                    t.identify(name, sim, frame, self.confirm)
        return ended

    def finish(self) -> list[Track]:
        """End every live track (end of input)."""
        ended, self.tracks = self.tracks, []
        return ended
