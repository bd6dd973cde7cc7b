"""Typed bodies of the service's answers (pydantic), so ``/openapi.json`` documents every response.

Units and conventions (one place: :mod:`arcface.serve.service` builds the bodies, these models describe them):
coordinates are pixels of the uploaded image after EXIF orientation, ``bbox`` is ``[x1, y1, x2, y2]``, ``kps``
the 5 landmarks ``[x, y]`` (left eye, right eye, nose, left mouth corner, right mouth corner, as seen in the
image); similarities and thresholds are cosine in ``[-1, 1]``; embeddings are L2-normalised float32; times are
UNIX seconds, except the video times, which are seconds from the start of the clip.

Every model allows extra keys (``extra="allow"``) so a newer server never breaks an older client; the contract
test checks that the answers seen in the test suite carry no key their model does not declare.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- errors
class ErrorDetail(_Body):
    """What went wrong."""

    code: str = Field(..., description="machine-readable code: unauthorized, payload_too_large, invalid_image, ...")
    message: str = Field(..., description="human-readable explanation naming the input")
    field: str | None = Field(None, description="the request field at fault, when there is one")


class ErrorBody(_Body):
    """Every error the service answers: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorDetail


# ---------------------------------------------------------------- faces
class ImageSize(_Body):
    width: int = Field(..., description="pixels, after EXIF orientation")
    height: int = Field(..., description="pixels, after EXIF orientation")


class FaceOut(_Body):
    """One detected face."""

    bbox: list[float] = Field(..., description="[x1, y1, x2, y2] in pixels of the uploaded image")
    score: float = Field(..., description="detection confidence in [0, 1]")
    kps: list[list[float]] = Field(..., description="5 landmarks [x, y] in pixels")
    path: str = Field(
        "detector",
        description="stage that found the face: detector, padded (a face filling the photo), low_threshold, "
        "or center_crop (no detection: the opt-in last resort)",
    )
    embedding: list[float] | None = Field(None, description="L2-normalised float32 embedding (when asked for)")


class ModelId(_Body):
    pack: str
    recognizer_sha256: str | None = None


class EmbedOut(_Body):
    image: ImageSize
    faces: list[FaceOut]
    embedding_dim: int
    model: ModelId


class FaceCounts(_Body):
    a: int
    b: int


class VerifiedImage(ImageSize):
    faces: list[FaceOut] = Field(..., description="every face found, without embeddings")
    used: int = Field(..., description="index in faces of the face that was compared")


class VerifyOut(_Body):
    similarity: float = Field(..., description="cosine of the two compared faces' embeddings")
    same: bool = Field(..., description="similarity >= threshold")
    threshold: float
    threshold_provenance: str = Field(..., description="where the threshold comes from (calibration, caller)")
    faces: FaceCounts = Field(..., description="faces found in each photo")
    face_a: FaceOut | None = None
    face_b: FaceOut | None = None
    notes: list[str] = Field(default_factory=list, description="warnings, e.g. a group photo's largest face used")
    images: dict[str, VerifiedImage] = Field(..., description="per upload field (image_a, image_b)")
    model: ModelId


class MatchOut(_Body):
    identity: str = Field(..., description="the candidate's name, or 'unknown' below the threshold")
    similarity: float = Field(..., description="cosine with the candidate's template")
    candidate: str = Field(..., description="the candidate's name whatever the threshold")


class IdentifiedFace(FaceOut):
    identity: str = Field(..., description="the best candidate's name, or 'unknown' below the threshold")
    similarity: float | None = Field(..., description="best similarity; null for an empty gallery")
    matches: list[MatchOut] = Field(..., description="top-k candidates, best first")


class IdentifyOut(_Body):
    gallery: str
    threshold: float
    image: ImageSize
    faces: list[IdentifiedFace]
    model: ModelId


# ---------------------------------------------------------------- galleries
class GalleryList(_Body):
    galleries: list[str]
    persistent: bool = Field(..., description="galleries are stored on disk (false: in memory)")


class GallerySummary(_Body):
    name: str
    identities: int
    threshold: float
    contract: dict[str, Any] | None = Field(None, description="model contract of the stored embeddings")


class IdentityOut(_Body):
    name: str
    id: int = Field(..., description="stable key, kept across renames")
    images: int = Field(..., description="photos enrolled")
    metadata: dict[str, Any]
    created: float
    updated: float
    thumbnail: bool = Field(False, description="a face thumbnail is stored (GET .../thumbnails/{id}.jpg)")


class FallbackFace(_Body):
    photo: str = Field(..., description="the upload (field and file name)")
    stage: str = Field(..., description="the last-resort stage that found its face: padded, low_threshold, center_crop")


class EnrollOut(IdentityOut):
    gallery: str
    found_by_fallback: list[FallbackFace] = Field(
        default_factory=list, description="photos whose face only a last-resort stage found: worth a look"
    )


class IdentityList(_Body):
    gallery: str
    identities: list[IdentityOut]


class GalleryDeleted(_Body):
    deleted: str


class IdentityDeleted(_Body):
    gallery: str
    deleted: str


# ---------------------------------------------------------------- meta
class Health(_Body):
    status: str
    pack: str
    self_test: dict[str, Any]


class ThresholdOut(_Body):
    value: float = Field(..., description="cosine")
    far: float | None = Field(None, description="false accept rate it was calibrated for")
    calibrated: bool
    provenance: str
    source: str = Field("", description="thresholds file it was read from ('package': the package's own)")
    engine: str | None = None
    agreement: dict[str, Any] | None = Field(None, description="measured agreement of this engine with the reference")


class Limits(_Body):
    max_upload_bytes: int
    max_pixels: int
    max_decode_bytes: int
    max_top_k: int
    max_concurrent_inferences: int


class PackOut(_Body):
    name: str
    source: str | None = None
    detector: str
    recognizer: str
    detector_sha256: str | None = None
    recognizer_sha256: str | None = None
    verified: bool | None = None
    licence: str | None = None


class GalleriesConfig(_Body):
    persistent: bool
    backend: str
    thumbnails: bool = Field(..., description="enrolment stores one 112x112 face crop per identity")


class ConfigOut(_Body):
    version: str
    pack: PackOut
    recognizer_spec: dict[str, Any]
    embedding_dim: int
    similarity: str
    threshold: ThresholdOut
    engine: dict[str, Any] = Field(..., description="inference engine, precision and why it was chosen")
    limits: Limits
    galleries: GalleriesConfig


# ---------------------------------------------------------------- video
class TrackEventOut(_Body):
    track: int
    start_frame: int
    end_frame: int
    start_time: float = Field(..., description="seconds from the start of the clip/stream")
    end_time: float
    identity: str | None
    similarity: float | None
    faces_used: int
    detections: int
    decisions: list[dict[str, Any]]


class VideoOut(_Body):
    gallery: str | None
    frames: int
    corrupt_frames: int
    max_seconds: float
    events: list[TrackEventOut]
    model: ModelId


class MonitorOut(_Body):
    id: str
    source: str
    gallery: str | None
    detect_every: int
    state: str = Field(..., description="starting, running, ended, stopped or failed")
    error: str | None
    frames: int
    events: int
    reconnects: int
    source_log: list[str]
    started: float


class MonitorList(_Body):
    monitors: list[MonitorOut]


class MonitorEvents(_Body):
    monitor: str
    next: int = Field(..., description="pass as ?since= to read only newer events")
    events: list[TrackEventOut]
