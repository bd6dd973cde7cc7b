"""One access-log line per request and an ``X-Request-ID`` on every response (a pure ASGI middleware).

The line goes to the ``arcface.access`` logger at INFO: ``METHOD PATH STATUS LATENCY_ms id=REQUEST_ID``. It
never holds images, embeddings, keys or query strings. A client's own ``X-Request-ID`` (1-64 characters of
``A-Z a-z 0-9 . _ -``) is kept, so calls can be traced across services; otherwise one is made.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

log = logging.getLogger("arcface.access")

HEADER = b"x-request-id"
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


class AccessLog:
    """Wraps an ASGI app: request id in, request id out, one log line when the response ends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER, b"")
        rid = given.decode("ascii") if _SAFE_ID.match(given) else uuid.uuid4().hex
        start = time.perf_counter()
        status = [0]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            ms = (time.perf_counter() - start) * 1000.0
            log.info("%s %s %d %.1fms id=%s", scope.get("method", "?"), scope.get("path", "?"), status[0], ms, rid)
