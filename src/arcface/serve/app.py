"""FastAPI application of the face recognition service.

Endpoints (all answers JSON; errors are ``{"error": {"code", "message", "field"}}``):

=========================================================  ==============================================
``GET  /``                                                  web page: compare two photos
``GET  /healthz``                                           liveness (always open)
``GET  /v1/config``                                         pack, digests, recognizer spec, threshold, limits
``POST /v1/embed``                                          multipart ``image`` -> faces with embeddings
``POST /v1/verify``                                         multipart ``image_a``, ``image_b`` -> similarity
``POST /v1/identify``                                       multipart ``image``, ``gallery`` -> top-k per face
``GET  /v1/galleries``                                      gallery names
``POST /v1/galleries/{gallery}``                            create an empty gallery
``GET  /v1/galleries/{gallery}``                            gallery summary
``DELETE /v1/galleries/{gallery}``                          delete a gallery and its files
``GET  /v1/galleries/{gallery}/identities``                 list identities
``POST /v1/galleries/{gallery}/identities``                 enrol: multipart ``name``, ``images`` (1+)
``GET  /v1/galleries/{gallery}/identities/{identity}``      one identity
``GET  /v1/galleries/{gallery}/thumbnails/{id}.jpg``        an identity's face thumbnail (JPEG)
``PATCH /v1/galleries/{gallery}/identities/{identity}``     rename: JSON ``{"name": new}``
``DELETE /v1/galleries/{gallery}/identities/{identity}``    delete an identity
``POST /v1/video``                                          multipart ``video`` -> one event per face track
``/v1/monitors``                                            stream monitors (start, list, events, preview, stop)
=========================================================  ==============================================

Pages (offline, no CDN): ``/`` compare, ``/identify``, ``/galleries``, ``/video``, ``/settings``; ``/docs``
and ``/redoc`` from local assets. Every answer's body is typed in :mod:`arcface.serve.schemas`.

With an API key, every ``/v1`` route needs header ``X-API-Key`` (401 otherwise); ``/``, ``/healthz``,
``/static``, ``/docs`` and ``/openapi.json`` stay open. Request bodies above ``max_upload_bytes`` get
413. Models are loaded once by :func:`create_app`; endpoints are plain functions that FastAPI runs in
its thread pool, so inference never blocks the event loop.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from arcface.errors import require

require("fastapi", "serve")
require("multipart", "serve")

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Security, UploadFile  # noqa: E402
from fastapi.responses import FileResponse, Response, StreamingResponse  # noqa: E402
from fastapi.security import APIKeyHeader  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from arcface.errors import InputError  # noqa: E402
from arcface.face import SelectRule  # noqa: E402
from arcface.serve.access_log import AccessLog  # noqa: E402
from arcface.serve.errors import ApiError, install_error_handlers  # noqa: E402
from arcface.serve.limits import BodySizeLimit, OriginGuard  # noqa: E402
from arcface.serve.schemas import (  # noqa: E402
    ConfigOut,
    EmbedOut,
    EnrollOut,
    ErrorBody,
    GalleryDeleted,
    GalleryList,
    GallerySummary,
    Health,
    IdentifyOut,
    IdentityDeleted,
    IdentityList,
    IdentityOut,
    MonitorEvents,
    MonitorList,
    MonitorOut,
    VerifyOut,
    VideoOut,
)
from arcface.serve.service import (  # noqa: E402
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    MAX_TOP_K,
    FaceService,
    Upload,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_KEY_HEADER = "X-API-Key"


#: The errors any /v1 route may answer, documented with their real shape (not FastAPI's default 422 body).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong API key (header X-API-Key)"},
    403: {"model": ErrorBody, "description": "request from another web origin (forbidden_origin)"},
    404: {"model": ErrorBody, "description": "no such gallery, identity or monitor"},
    409: {"model": ErrorBody, "description": "name already taken / conflicting state"},
    413: {"model": ErrorBody, "description": "request body over the upload limit"},
    422: {"model": ErrorBody, "description": "invalid request or image (no face, unreadable, over the pixel budget)"},
}


class MonitorBody(BaseModel):
    """A stream to monitor."""

    source: str = Field(..., description="stream URL (rtsp://, http://...) under an allowed --monitor-source prefix")
    gallery: str | None = Field(None, description="gallery to identify tracks against")
    detect_every: int = Field(5, description="run the detector every N frames, 1..100")


class RenameBody(BaseModel):
    """New name of an identity."""

    name: str = Field(..., description="the identity's new name (unique in the gallery)")


def _offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI (and ``/redoc``) from the ``fastapi-offline`` wheel's static files, served here, so
    the pages work without internet (only its files are used, located without importing it)."""
    import importlib.util

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    found = importlib.util.find_spec("fastapi_offline")
    if found is None or not found.submodule_search_locations:  # pragma: no cover - part of the serve extra
        return
    assets = Path(list(found.submodule_search_locations)[0]) / "static"
    if not (assets / "swagger-ui-bundle.js").is_file():  # pragma: no cover
        return
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="arcface - API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> Any:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="arcface - API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


def _upload(field: str, up: UploadFile) -> Upload:
    return Upload(field, up.filename or None, up.file.read())


def _auth_dependency(api_key: str | None):
    scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (when the service has one)")

    def check(key: str | None = Security(scheme)) -> None:  # noqa: B008 (FastAPI idiom)
        if api_key is None:
            return
        if key is None:
            raise ApiError(401, "unauthorized", f"missing API key: send it in header {API_KEY_HEADER}")
        # HTTP header values arrive as bytes that the framework decodes as latin-1: compare the raw bytes with
        # the key's UTF-8 bytes, so a non-ASCII key matches what a client sends for it
        if not secrets.compare_digest(key.encode("latin-1", errors="replace"), api_key.encode("utf-8")):
            raise ApiError(401, "unauthorized", f"wrong API key in header {API_KEY_HEADER}")

    return check


def create_app(
    pack: str | os.PathLike | None = None,
    gallery_root: str | os.PathLike | None = None,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    analyzer: Any = None,
    det_size: int = 640,
    max_concurrent: int | None = None,
    gallery_backend: str = "auto",
    cors_origins: tuple[str, ...] | list[str] = (),
    monitor_sources: tuple[str, ...] | list[str] = (),
    thumbnails: bool = True,
) -> FastAPI:
    """Build the service; the face models are loaded here, once, and shared by every request.

    Args:
        pack: model pack name or directory (default: ``buffalo_sc``, built in); ignored with ``analyzer``.
        gallery_root: folder of named galleries (one sub-folder each); ``None``: galleries in memory.
        api_key: when set, ``/v1`` routes need header ``X-API-Key`` with this value.
        max_upload_bytes: limit of a whole request body in bytes (all files of one request); 413 above.
        max_pixels: limit of width x height of an uploaded image (read before decoding); 422 above.
        analyzer: an existing :class:`arcface.pipeline.FaceAnalyzer` to share instead of loading one.
        det_size: detector canvas side in pixels (multiple of 32) when the analyzer is built here.
        max_concurrent: inferences run at once (default: CPU cores); further requests wait their turn.
        gallery_backend: vector index of galleries: ``"auto"`` (FAISS if installed), ``"numpy"``, ...
        monitor_sources: URL prefixes that stream monitors may open (none: ``POST /v1/monitors`` is refused).
        cors_origins: web origins (``https://app.example``) allowed to call the service from a browser;
            requests carrying any other ``Origin`` than the service's own get 403 ``forbidden_origin``.
        thumbnails: enrolment keeps one 112x112 face crop per identity, shown by the Galleries page.

    Raises:
        ModelError: the models fail their start-up self-test (one real run of each; see
            :meth:`arcface.pipeline.FaceAnalyzer.self_test`), so a broken model never reports healthy.
    """
    if api_key is not None and not api_key:
        api_key = None
    if analyzer is None:
        from arcface.pipeline import FaceAnalyzer

        analyzer = FaceAnalyzer(pack=pack, det_size=det_size)
    service = FaceService(
        analyzer,
        gallery_root=gallery_root,
        max_pixels=max_pixels,
        max_upload_bytes=max_upload_bytes,
        max_concurrent=max_concurrent,
        gallery_backend=gallery_backend,
        monitor_sources=tuple(monitor_sources),
        thumbnails=thumbnails,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()

    from arcface import __version__

    app = FastAPI(
        title="arcface",
        version=__version__,
        description="Face detection, embedding, 1:1 verification and 1:N identification with ArcFace. "
        "Similarities and thresholds are cosine in [-1, 1]; coordinates are pixels of the uploaded image "
        '(after EXIF orientation); errors are JSON {"error": {"code", "message", "field"}}.',
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_upload_bytes)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(OriginGuard, allowed=tuple(cors_origins))
    app.add_middleware(AccessLog)  # outermost: sees the guards' 403/413 too

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    def page(name: str) -> None:
        @app.get(f"/{name}", include_in_schema=False, name=f"{name}_page")
        def serve_page() -> FileResponse:
            return FileResponse(STATIC_DIR / f"{name}.html", media_type="text/html")

    for name in ("identify", "galleries", "video", "settings"):
        page(name)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _offline_docs(app)

    @app.get(
        "/healthz",
        tags=["meta"],
        response_model=Health,
        summary="Liveness check (no auth): the models passed their start-up run",
    )
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "pack": service.analyzer.pack.name, "self_test": service.self_test}

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_auth_dependency(api_key))], responses=ERROR_RESPONSES)

    @v1.get(
        "/config", tags=["meta"], response_model=ConfigOut, summary="Models, digests, threshold with provenance, limits"
    )
    def config() -> dict[str, Any]:
        return service.config()

    @v1.post(
        "/embed",
        tags=["faces"],
        response_model=EmbedOut,
        response_model_exclude_unset=True,
        summary="Detect faces and return boxes, landmarks and embeddings",
    )
    def embed(
        image: Annotated[UploadFile, File(description="photo (JPEG, PNG, WebP, BMP, PGM/PPM)")],
        embeddings: Annotated[bool, Query(description="include the 512-d embeddings")] = True,
    ) -> dict[str, Any]:
        return service.embed(_upload("image", image), with_embeddings=embeddings)

    @v1.post(
        "/verify",
        tags=["faces"],
        response_model=VerifyOut,
        summary="Are two faces the same person? (the largest of each, or chosen)",
    )
    def verify(
        image_a: Annotated[UploadFile, File(description="first photo")],
        image_b: Annotated[UploadFile, File(description="second photo")],
        threshold: Annotated[float | None, Form(description="cosine threshold (default: calibrated)")] = None,
        face_a: Annotated[int | None, Form(description="face index in image_a (default: largest)")] = None,
        face_b: Annotated[int | None, Form(description="face index in image_b (default: largest)")] = None,
        select: Annotated[
            SelectRule, Form(description="which face of a photo with several, without face_a/face_b")
        ] = "largest",
    ) -> dict[str, Any]:
        return service.verify(
            _upload("image_a", image_a), _upload("image_b", image_b), threshold, face_a, face_b, select
        )

    @v1.post(
        "/identify",
        tags=["galleries"],
        response_model=IdentifyOut,
        response_model_exclude_unset=True,
        summary="Identify every face of a photo against a gallery",
    )
    def identify(
        image: Annotated[UploadFile, File(description="photo")],
        gallery: Annotated[str, Form(description="gallery name")],
        top_k: Annotated[int, Form(description=f"candidates per face, 1..{MAX_TOP_K}")] = 5,
        threshold: Annotated[float | None, Form(description="cosine threshold (default: the gallery's)")] = None,
    ) -> dict[str, Any]:
        return service.identify(_upload("image", image), gallery, top_k, threshold)

    reg = service.galleries

    @v1.get("/galleries", tags=["galleries"], response_model=GalleryList, summary="List galleries")
    def list_galleries() -> dict[str, Any]:
        return {"galleries": reg.names(), "persistent": reg.persistent}

    @v1.post(
        "/galleries/{gallery}",
        tags=["galleries"],
        response_model=GallerySummary,
        status_code=201,
        summary="Create an empty gallery",
    )
    def create_gallery(gallery: str) -> dict[str, Any]:
        reg.create(gallery)
        return reg.describe(gallery)

    @v1.get("/galleries/{gallery}", tags=["galleries"], response_model=GallerySummary, summary="Gallery summary")
    def get_gallery(gallery: str) -> dict[str, Any]:
        return reg.describe(gallery)

    @v1.delete(
        "/galleries/{gallery}",
        tags=["galleries"],
        response_model=GalleryDeleted,
        summary="Delete a gallery and its files",
    )
    def delete_gallery(gallery: str) -> dict[str, Any]:
        reg.delete(gallery)
        return {"deleted": gallery}

    @v1.get(
        "/galleries/{gallery}/identities", tags=["galleries"], response_model=IdentityList, summary="List identities"
    )
    def list_identities(gallery: str) -> dict[str, Any]:
        g = reg.get(gallery)
        g.refresh()
        return {"gallery": gallery, "identities": [reg.identity_json(gallery, g, n) for n in g.names]}

    @v1.post(
        "/galleries/{gallery}/identities",
        tags=["galleries"],
        response_model=EnrollOut,
        status_code=201,
        summary="Enrol (or extend) an identity with photos, the largest face of each",
    )
    def enroll(
        gallery: str,
        name: Annotated[str, Form(description="identity name")],
        images: Annotated[list[UploadFile], File(description="one or more photos of that person")],
        metadata: Annotated[str | None, Form(description="JSON object merged into the identity's metadata")] = None,
        replace: Annotated[bool, Form(description="replace the identity's photos instead of adding")] = False,
    ) -> dict[str, Any]:
        meta = None
        if metadata:
            try:
                meta = json.loads(metadata)
            except ValueError as exc:
                raise ApiError(422, "invalid_request", f"metadata is not valid JSON ({exc})", "metadata") from exc
            if not isinstance(meta, dict):
                raise ApiError(422, "invalid_request", "metadata must be a JSON object", "metadata")
        uploads = [_upload(f"images[{i}]", up) for i, up in enumerate(images)]
        return service.enroll(gallery, name, uploads, meta, replace)

    def _identity_or_404(g: Any, gallery: str, identity: str) -> None:
        if identity not in g:
            raise ApiError(404, "identity_not_found", f"no identity {identity!r} in gallery {gallery!r}", "identity")

    @v1.get(
        "/galleries/{gallery}/identities/{identity:path}",
        tags=["galleries"],
        response_model=IdentityOut,
        summary="One identity",
    )
    def get_identity(gallery: str, identity: str) -> dict[str, Any]:
        g = reg.get(gallery)
        g.refresh()
        _identity_or_404(g, gallery, identity)
        return reg.identity_json(gallery, g, identity)

    @v1.get(
        "/galleries/{gallery}/thumbnails/{ident_id}.jpg",
        tags=["galleries"],
        summary="An identity's face thumbnail (112x112 aligned crop, JPEG), by the identity's id",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    def thumbnail(gallery: str, ident_id: int) -> Response:
        reg.get(gallery)
        jpeg = reg.thumbnail(gallery, ident_id)
        if jpeg is None:
            raise ApiError(404, "thumbnail_not_found", f"no thumbnail for identity id {ident_id} in {gallery!r}", "id")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})

    @v1.patch(
        "/galleries/{gallery}/identities/{identity:path}",
        tags=["galleries"],
        response_model=IdentityOut,
        summary="Rename an identity",
    )
    def rename_identity(gallery: str, identity: str, body: RenameBody) -> dict[str, Any]:
        with reg.writing(gallery) as g:
            _identity_or_404(g, gallery, identity)
            if body.name.strip() != identity and body.name.strip() in g:
                raise ApiError(409, "identity_exists", f"an identity named {body.name!r} already exists", "name")
            try:
                g.rename(identity, body.name)
            except InputError as exc:
                raise ApiError(422, "invalid_identity", str(exc), "name") from exc
            return reg.identity_json(gallery, g, body.name.strip())

    @v1.delete(
        "/galleries/{gallery}/identities/{identity:path}",
        tags=["galleries"],
        response_model=IdentityDeleted,
        summary="Delete an identity",
    )
    def delete_identity(gallery: str, identity: str) -> dict[str, Any]:
        with reg.writing(gallery) as g:
            _identity_or_404(g, gallery, identity)
            ident_id = g.info(identity)["id"]
            g.remove(identity)
            reg.drop_thumbnail(gallery, ident_id)
        return {"gallery": gallery, "deleted": identity}

    @v1.post(
        "/video",
        tags=["video"],
        response_model=VideoOut,
        summary="Track and identify the faces of an uploaded clip (one event per track)",
    )
    def video(
        video: Annotated[UploadFile, File(description="a short clip (mp4, avi, mov, mkv)")],
        gallery: Annotated[str | None, Form(description="gallery to identify tracks against")] = None,
        detect_every: Annotated[int, Form(description="run the detector every N frames, 1..100")] = 5,
        threshold: Annotated[float | None, Form(description="cosine threshold (default: the gallery's)")] = None,
    ) -> dict[str, Any]:
        return service.video(_upload("video", video), gallery, detect_every, threshold)

    mons = service.monitors

    @v1.post(
        "/monitors",
        tags=["video"],
        response_model=MonitorOut,
        status_code=201,
        summary="Start tracking a stream in the background",
    )
    def start_monitor(body: MonitorBody) -> dict[str, Any]:
        return mons.start(body.source, body.gallery, body.detect_every).describe()

    @v1.get("/monitors", tags=["video"], response_model=MonitorList, summary="List stream monitors")
    def list_monitors() -> dict[str, Any]:
        return {"monitors": mons.list()}

    @v1.get(
        "/monitors/{monitor}",
        tags=["video"],
        response_model=MonitorOut,
        summary="One monitor: state, frames, reconnections",
    )
    def get_monitor(monitor: str) -> dict[str, Any]:
        return mons.get(monitor).describe()

    @v1.get(
        "/monitors/{monitor}/events",
        tags=["video"],
        response_model=MonitorEvents,
        summary="Track events of a monitor (since a position)",
    )
    def monitor_events(monitor: str, since: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        return mons.events(monitor, since)

    @v1.get("/monitors/{monitor}/preview.mjpeg", tags=["video"], summary="Live annotated preview (MJPEG)")
    def monitor_preview(monitor: str, seconds: Annotated[float, Query(gt=0, le=600)] = 60.0) -> StreamingResponse:
        parts = mons.preview(monitor, seconds)
        return StreamingResponse(parts, media_type="multipart/x-mixed-replace; boundary=frame")

    @v1.delete("/monitors/{monitor}", tags=["video"], response_model=MonitorOut, summary="Stop a monitor")
    def stop_monitor(monitor: str) -> dict[str, Any]:
        return mons.stop(monitor)

    app.include_router(v1)
    return app
