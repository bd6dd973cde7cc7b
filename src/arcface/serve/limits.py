"""Request body size limit as a pure ASGI middleware (answers 413 JSON).

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


class BodySizeLimit:
    """Refuse HTTP requests whose body exceeds ``max_bytes`` with ``413`` and the service's JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _send_413(self, send: Send, declared: int | None) -> None:
        body = _too_large_body(self.max_bytes, declared)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

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
