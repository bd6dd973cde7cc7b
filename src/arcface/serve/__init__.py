"""HTTP service: a FastAPI app (embed, verify, identify, gallery CRUD, config) and a web page.

Needs the ``serve`` extra (``pip install 'arcface[serve]'``). Start it with ``arcface serve`` or::

    from arcface.serve import create_app
    app = create_app(gallery_root="galleries", api_key="secret")   # models load here, once

See :mod:`arcface.serve.app` for the endpoints.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "run"]


def __getattr__(name: str) -> Any:  # lazy: importing the package must not import fastapi
    if name == "create_app":
        from arcface.serve.app import create_app

        return create_app
    if name == "run":
        from arcface.serve.runner import run

        return run
    raise AttributeError(f"module 'arcface.serve' has no attribute {name!r}")
