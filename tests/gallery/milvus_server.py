"""A real Milvus standalone server for tests: the PyPI ``milvus`` package (it embeds the Milvus binary with its
etcd and local storage), started on free loopback ports in a folder of the test and stopped by it."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from net import free_port


def available() -> bool:
    return importlib.util.find_spec("milvus") is not None and importlib.util.find_spec("pymilvus") is not None


class MilvusServer:
    """``start()`` / ``stop(kill=...)`` a Milvus standalone server keeping its data in ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self._server: Any = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> None:
        from milvus import MilvusServer as Embedded

        server = Embedded(wait_for_started=False)
        server.set_base_dir(str(self.base))
        server.listen_port = self.port  # where to start looking: the package binds the first free port from it
        server.start()
        self._server = server
        self.port = server.listen_port  # the port it bound (a restart can find the old one still held)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.server_proc is None or server.server_proc.poll() is not None:
                raise RuntimeError(f"milvus exited with {server.server_proc.returncode if server.server_proc else '?'}")
            try:
                server.wait_started(timeout=2000)
                if self.ready():
                    return
            except (TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop(kill=True)
        raise TimeoutError(f"milvus did not start within {timeout_s:.0f} s (logs in {self.base / 'logs'})")

    def ready(self) -> bool:
        from pymilvus import MilvusClient

        try:
            MilvusClient(uri=self.uri, timeout=5).list_collections()
            return True
        except Exception:  # noqa: BLE001 - pymilvus raises many types while the server starts
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server: SIGTERM with time to shut down cleanly, or SIGKILL (``kill=True``: a crash)."""
        server, self._server = self._server, None
        if server is None or server.server_proc is None:
            return
        proc = server.server_proc
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            proc.kill()
            proc.wait(timeout=10)
        server.server_proc = None
        server.stop()
