"""The service's shared state and request logic, independent of the web framework.

One :class:`FaceService` per process holds the face analyzer (ONNX Runtime sessions, loaded once and
shared by every request: sessions are thread-safe), a semaphore bounding how many inferences run at
once (more would only oversubscribe the CPU cores), and the gallery registry. Its methods are
blocking; the web layer runs them in a thread pool.

Coordinates in answers are pixels of the uploaded image after EXIF orientation; embeddings are float32
L2-normalised; similarities and thresholds are cosine in ``[-1, 1]``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcface.errors import InputError
from arcface.face import Face, face_index, largest_face
from arcface.gallery import EmbeddingContract
from arcface.imageio import MAX_DECODE_BYTES, decode_image, encode_image
from arcface.pipeline import FaceAnalyzer
from arcface.serve.errors import ApiError
from arcface.serve.galleries import GalleryRegistry
from arcface.thresholds import Threshold, check_threshold
from arcface.verify import verify_faces

#: Default pixel limit of uploaded images (width x height read from the header before decoding).
DEFAULT_MAX_PIXELS = 40_000_000
#: Default limit on the whole request body in bytes (all uploaded files of one request together).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Most candidates one identification may ask for per face.
MAX_TOP_K = 100
#: Uploaded clips are processed up to this many seconds of video.
DEFAULT_MAX_VIDEO_SECONDS = 120.0


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the form field it came in, its file name and its bytes."""

    field: str
    filename: str | None
    data: bytes

    @property
    def label(self) -> str:
        return f"{self.field} ({self.filename})" if self.filename else self.field


def face_json(face: Face, with_embedding: bool = True) -> dict[str, Any]:
    """``{"bbox", "score", "kps"[, "embedding"]}``: pixels, confidence in [0, 1], unit float32 list."""
    d = face.to_dict()
    if with_embedding and face.embedding is not None:
        d["embedding"] = [float(v) for v in np.asarray(face.embedding, np.float32)]
    return d


class FaceService:
    """Analyzer + limits + galleries, shared by all requests.

    Args:
        analyzer: the face analyzer (built by the app factory from a pack, or given).
        gallery_root: folder of named galleries; ``None`` keeps galleries in memory.
        max_pixels: refuse images above this many pixels (checked from the header, before decoding).
        max_upload_bytes: limit of one request body (enforced by the web layer; reported by ``config``).
        max_concurrent: inferences allowed at once (default: the number of CPU cores).
        gallery_backend: vector index of the galleries (``"auto"``: FAISS if installed, else numpy).
        max_decode_bytes: refuse images whose decoding needs more memory than this (from the header).
        monitor_sources: URL prefixes stream monitors may connect to (none: monitors are refused).
        max_video_seconds: uploaded clips are processed up to this much video time.
        thumbnails: enrolment keeps one face thumbnail per identity (the web app's people list).
    """

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        gallery_root: str | os.PathLike | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_concurrent: int | None = None,
        gallery_backend: str = "auto",
        max_decode_bytes: int = MAX_DECODE_BYTES,
        monitor_sources: tuple[str, ...] = (),
        max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS,
        thumbnails: bool = True,
    ) -> None:
        if max_pixels <= 0 or max_upload_bytes <= 0:
            raise InputError("max_pixels and max_upload_bytes must be positive")
        self.analyzer = analyzer
        self.max_pixels = int(max_pixels)
        self.max_decode_bytes = int(max_decode_bytes)
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_concurrent = int(max_concurrent or os.cpu_count() or 1)
        self._slots = threading.BoundedSemaphore(self.max_concurrent)
        #: Result of one real run of both models at start-up (a broken model raises ModelError here).
        self.self_test = analyzer.self_test()
        self.contract = EmbeddingContract.from_analyzer(analyzer)
        self.threshold: Threshold = analyzer.threshold
        self.galleries = GalleryRegistry(
            gallery_root, self.contract, self.threshold.value, gallery_backend, thumbnails=thumbnails
        )
        from arcface.serve.monitors import MonitorRegistry

        self.monitors = MonitorRegistry(analyzer, self.galleries, tuple(monitor_sources))
        self.max_video_seconds = float(max_video_seconds)

    # ------------------------------------------------------------------ images
    def decode(self, upload: Upload) -> np.ndarray:
        """uint8 RGB ``(H, W, 3)`` of an upload; 422 ``invalid_image`` naming the field otherwise.

        Decoding takes an inference slot, so at most ``max_concurrent`` images are decoded at once and the
        service's peak memory is bounded by ``max_concurrent`` times the decode budget.
        """
        with self._slots:
            try:
                return decode_image(upload.data, upload.label, self.max_pixels, self.max_decode_bytes)
            except InputError as exc:
                raise ApiError(422, "invalid_image", str(exc), upload.field) from exc

    def analyze(self, images: Sequence[np.ndarray], with_crops: bool = False) -> list[list[Face]]:
        """Faces (with embeddings; with aligned crops on request) of decoded images, one inference slot at a time."""
        with self._slots:
            return self.analyzer.analyze_many(list(images), with_crops=with_crops)

    # ------------------------------------------------------------------ endpoints
    def embed(self, upload: Upload, with_embeddings: bool = True) -> dict[str, Any]:
        image = self.decode(upload)
        faces = self.analyze([image])[0]
        return {
            "image": _image_json(image),
            "faces": [face_json(f, with_embeddings) for f in faces],
            "embedding_dim": self.contract.dim,
            "model": self.model_id(),
        }

    def verify(
        self,
        a: Upload,
        b: Upload,
        threshold: float | None = None,
        face_a: int | None = None,
        face_b: int | None = None,
        select: str = "largest",
    ) -> dict[str, Any]:
        """Compare one face of each photo: the one ``select`` picks (``largest``, ``center``, ``center_largest``),
        or the one at index ``face_a``/``face_b`` (in the order of ``images.<field>.faces`` of a previous answer)."""
        _check_threshold(threshold)
        images = [self.decode(a), self.decode(b)]
        faces_a, faces_b = self.analyze(images)
        for faces, up, index, field in ((faces_a, a, face_a, "face_a"), (faces_b, b, face_b, "face_b")):
            if not faces:
                raise ApiError(422, "no_face", f"no face found in {up.label}", up.field)
            if index is not None and not 0 <= index < len(faces):
                msg = f"{up.label} has {len(faces)} faces: {field}={index} is out of range"
                raise ApiError(422, "invalid_request", msg, field)
        chosen = self.threshold if threshold is None else threshold
        result = verify_faces(faces_a, faces_b, chosen, names=(a.label, b.label), pick=(face_a, face_b), select=select)
        out = result.to_dict()
        out["images"] = {
            up.field: {
                **_image_json(img),
                "faces": [face_json(f, False) for f in faces],
                "used": face_index(faces, used),
            }
            for up, img, faces, used in (
                (a, images[0], faces_a, result.face_a),
                (b, images[1], faces_b, result.face_b),
            )
        }
        out["model"] = self.model_id()
        return out

    def identify(
        self, upload: Upload, gallery_name: str, top_k: int = 5, threshold: float | None = None
    ) -> dict[str, Any]:
        if not 1 <= top_k <= MAX_TOP_K:
            raise ApiError(422, "invalid_request", f"top_k must be in [1, {MAX_TOP_K}], got {top_k}", "top_k")
        _check_threshold(threshold)
        gallery = self.galleries.get(gallery_name)
        image = self.decode(upload)
        faces = self.analyze([image])[0]
        gallery.refresh()  # see writes of other processes
        thr = gallery.threshold if threshold is None else float(threshold)
        results = gallery.search_batch(np.stack([f.embedding for f in faces]), top_k, thr) if faces else []
        return {
            "gallery": gallery_name,
            "threshold": thr,
            "image": _image_json(image),
            "faces": [{**face_json(f, False), **r.to_dict()} for f, r in zip(faces, results)],
            "model": self.model_id(),
        }

    def enroll(
        self,
        gallery_name: str,
        name: str,
        uploads: Sequence[Upload],
        metadata: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Enrol ``name`` with the largest face of each photo (all photos or none); keeps a thumbnail (the first
        photo's aligned face) when the identity has none, or a new one with ``replace``."""
        if not uploads:
            raise ApiError(422, "invalid_request", "give at least one photo in field 'images'", "images")
        registry = self.galleries
        registry.get(gallery_name)  # 404 before spending inference time
        images = [self.decode(u) for u in uploads]
        all_faces = self.analyze(images, with_crops=registry.thumbnails)
        chosen = []
        for up, faces in zip(uploads, all_faces):
            if not faces:
                raise ApiError(422, "no_face", f"no face found in {up.label}", up.field)
            chosen.append(largest_face(faces))
        with registry.writing(gallery_name) as gallery:
            try:
                gallery.enroll(
                    name, np.stack([f.embedding for f in chosen]), metadata, replace=replace, contract=self.contract
                )
            except InputError as exc:
                raise ApiError(422, "invalid_identity", str(exc), "name") from exc
            stored = name.strip()
            info = registry.identity_json(gallery_name, gallery, stored)
            if registry.thumbnails and (replace or not info["thumbnail"]) and chosen[0].crop is not None:
                jpeg = encode_image(chosen[0].crop, quality=85, name="thumbnail")
                registry.put_thumbnail(gallery_name, info["id"], jpeg)
                info["thumbnail"] = True
        fallback = [{"photo": up.label, "stage": f.path} for up, f in zip(uploads, chosen) if f.found_by_fallback]
        return {"gallery": gallery_name, **info, "found_by_fallback": fallback}

    def video(
        self, upload: Upload, gallery_name: str | None = None, detect_every: int = 5, threshold: float | None = None
    ) -> dict[str, Any]:
        """Track and identify the faces of an uploaded clip; one event per track (see :mod:`arcface.video`)."""
        import tempfile

        from arcface.video import open_source, track

        _check_threshold(threshold)
        if not 1 <= detect_every <= 100:
            raise ApiError(422, "invalid_request", "detect_every must be in [1, 100]", "detect_every")
        gallery = self.galleries.get(gallery_name) if gallery_name else None
        if gallery is not None:
            gallery.refresh()  # see enrolments made by other processes
        suffix = Path(upload.filename or "clip.mp4").suffix.lower()
        with tempfile.NamedTemporaryFile(suffix=suffix if suffix in (".mp4", ".avi", ".mov", ".mkv") else ".mp4") as f:
            f.write(upload.data)
            f.flush()
            try:
                source = open_source(f.name, max_pixels=self.max_pixels)
                with self._slots:
                    events = [
                        e.to_dict()
                        for e in track(
                            source,
                            self.analyzer,
                            gallery,
                            detect_every=detect_every,
                            max_seconds=self.max_video_seconds,
                            threshold=threshold,
                        )
                    ]
            except InputError as exc:
                raise ApiError(422, "invalid_video", f"{upload.label}: {exc}", upload.field) from exc
        return {
            "gallery": gallery_name,
            "frames": source.stats.frames,
            "corrupt_frames": source.stats.corrupt,
            "max_seconds": self.max_video_seconds,
            "events": events,
            "model": self.model_id(),
        }

    def model_id(self) -> dict[str, Any]:
        pack = self.analyzer.pack
        return {"pack": pack.name, "recognizer_sha256": pack.recognizer_sha256}

    def config(self) -> dict[str, Any]:
        """What this service runs: pack, digests, recognizer spec, threshold with provenance, limits."""
        from arcface import __version__

        pack = self.analyzer.pack
        return {
            "version": __version__,
            "pack": {
                "name": pack.name,
                "source": pack.source,
                "detector": os.path.basename(pack.detector),
                "recognizer": os.path.basename(pack.recognizer),
                "detector_sha256": pack.detector_sha256,
                "recognizer_sha256": pack.recognizer_sha256,
                "verified": pack.verified,
                "licence": pack.licence,
            },
            "recognizer_spec": self.analyzer.embedder.spec.to_dict(),
            "embedding_dim": self.contract.dim,
            "similarity": "cosine in [-1, 1] of L2-normalised float32 embeddings",
            "threshold": self.threshold.to_dict(),
            "engine": self.analyzer.engine.to_dict(),
            "limits": {
                "max_upload_bytes": self.max_upload_bytes,
                "max_pixels": self.max_pixels,
                "max_decode_bytes": self.max_decode_bytes,
                "max_top_k": MAX_TOP_K,
                "max_concurrent_inferences": self.max_concurrent,
            },
            "galleries": {
                "persistent": self.galleries.persistent,
                "backend": self.galleries.backend,
                "thumbnails": self.galleries.thumbnails,
            },
        }

    def close(self) -> None:
        self.monitors.close()
        self.galleries.close()


def _image_json(image: np.ndarray) -> dict[str, int]:
    return {"width": int(image.shape[1]), "height": int(image.shape[0])}


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None:
        try:
            check_threshold(threshold)
        except InputError as exc:
            raise ApiError(422, "invalid_request", str(exc), "threshold") from None
