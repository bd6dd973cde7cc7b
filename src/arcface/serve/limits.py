"""Request guards as pure ASGI middlewares: body size (413 JSON) and cross-site origin (403 JSON).

Body size:

Two checks, because ``Content-Length`` can be absent (chunked uploads) or wrong:

1. a declared ``Content-Length`` above the limit is refused before any byte of the body is read;
2. the body is counted as it streams in; once it passes the limit, reading stops, whatever the
   application had started answering is discarded and a 413 is sent instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


def _too_large_body(limit: int, declared: int | None) -> bytes:
    got = f"declares {declared} bytes" if declared is not None else "is larger"
    message = f"request body {got}; the limit is {limit} bytes ({limit / 2**20:.1f} MiB)"
    return json.dumps({"error": {"code": "payload_too_large", "message": message, "field": None}}).encode()


async def send_json_error(send: Send, status: int, body: bytes, close: bool = False) -> None:
    """Answer with ``status`` and a JSON ``body`` (the service's error shape), straight from a middleware."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse HTTP requests whose body exceeds ``max_bytes`` with ``413`` and the service's JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _send_413(self, send: Send, declared: int | None) -> None:
        await send_json_error(send, 413, _too_large_body(self.max_bytes, declared), close=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.max_bytes:
            await self._send_413(send, declared)
            return

        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["exceeded"] = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                return  # the app's answer to a body cut short is replaced by the 413 below
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await self._send_413(send, None)


def _forbidden_origin_body(origin: str) -> bytes:
    message = (
        f"cross-site request refused: Origin {origin!r} is not this service; allow it with --cors-origin "
        "(or cors_origins=) if that page should use this service"
    )
    return json.dumps({"error": {"code": "forbidden_origin", "message": message, "field": None}}).encode()


def origin_netloc(origin: str) -> str | None:
    """``host[:port]`` of an ``Origin`` header value (lower case), or ``None`` for ``null``/malformed ones."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


class OriginGuard:
    """Refuse requests sent by a web page of another site (``Origin`` header not this service's own).

    Browsers attach ``Origin`` to cross-site requests, including the "simple" multipart POSTs that any
    web page may send without CORS; without this guard such a page could drive a service on the
    visitor's machine (create galleries, enrol faces). Requests without ``Origin`` (curl, the Python
    client, same-origin navigation) pass. ``allowed`` lists extra origins (``https://app.example``).
    """

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...] | list[str] = ()) -> None:
        self.app = app
        self.allowed = {n for n in (origin_netloc(o) for o in allowed) if n}
        self.allowed_raw = {o.strip().rstrip("/").lower() for o in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            netloc = origin_netloc(text)
            host = headers.get(b"host", b"").decode("latin-1").lower()
            same = netloc is not None and netloc == host
            if not (same or netloc in self.allowed or text.strip().rstrip("/").lower() in self.allowed_raw):
                await send_json_error(send, 403, _forbidden_origin_body(text))
                return
        await self.app(scope, receive, send)
