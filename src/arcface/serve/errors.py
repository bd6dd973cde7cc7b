"""JSON errors of the HTTP service: ``{"error": {"code": ..., "message": ..., "field": ...}}``.

Every error response of the service has this shape (``field`` names the request field at fault, or is
``null``). Library exceptions are mapped here: :class:`~arcface.errors.InputError` -> 422,
:class:`~arcface.errors.NoFaceError` -> 422 ``no_face``, :class:`~arcface.errors.ModelError` -> 500;
anything unexpected becomes a 500 ``internal_error`` without a traceback in the body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from arcface.errors import InputError, ModelError, NoFaceError
from arcface.gallery.store import GalleryGoneError

log = logging.getLogger("arcface.serve")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
}


class ApiError(Exception):
    """An error answered as JSON with an HTTP status, a stable machine code and a human message."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None, headers=None) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def _validation_field(loc: tuple | list) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    """Map framework and library exceptions to the service's JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = _validation_field(first.get("loc", ()))
        msg = first.get("msg", "invalid request")
        if first.get("type") == "missing":
            msg = f"missing required field {field!r}"
        elif field:
            msg = f"{field}: {msg}"
        return error_response(422, "invalid_request", msg, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, None, getattr(exc, "headers", None))

    @app.exception_handler(NoFaceError)
    async def _no_face(request: Request, exc: NoFaceError) -> JSONResponse:
        return error_response(422, "no_face", str(exc))

    @app.exception_handler(GalleryGoneError)
    async def _gone(request: Request, exc: GalleryGoneError) -> JSONResponse:
        return error_response(404, "gallery_not_found", str(exc), "gallery")

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return error_response(422, "invalid_input", str(exc))

    @app.exception_handler(ModelError)
    async def _model(request: Request, exc: ModelError) -> JSONResponse:
        log.error("model error: %s", exc)
        return error_response(500, "model_error", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
