"""Run the service with uvicorn: in the foreground (:func:`run`) or in a background thread (:func:`serve_in_thread`)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from arcface.errors import require


def run(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` (from :func:`arcface.serve.create_app`) until interrupted (Ctrl-C / SIGTERM).

    One process, one event loop; inference runs in the thread pool and shares the loaded models. The access log
    is the service's own (``arcface.access``: method, path, status, latency, request id), on stderr from level
    ``info``.
    """
    import logging

    uvicorn = require("uvicorn", "serve")
    access = logging.getLogger("arcface.access")
    if not access.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        access.addHandler(handler)
        access.propagate = False
    access.setLevel(log_level.upper() if log_level.upper() in logging._nameToLevel else "INFO")
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1, access_log=False)


def bind_free_port(host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on a free port of ``host`` (no race between choosing and binding)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


@dataclass
class BackgroundServer:
    """A uvicorn server running in a daemon thread; ``url`` is ``http://host:port``."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Any, host: str = "127.0.0.1", timeout: float = 30.0) -> BackgroundServer:
    """Start ``app`` on a free port of ``host`` in a background thread; returns once it accepts requests."""
    uvicorn = require("uvicorn", "serve")
    sock = bind_free_port(host)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="arcface-serve")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the service did not start on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.02)
    return BackgroundServer(f"http://{host}:{port}", server, thread)
