"""``arcface serve``: the HTTP service (FastAPI + uvicorn) with its web page."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from arcface.cli.common import add_pack_options, analyzer_from_args

API_KEY_ENV = "ARCFACE_API_KEY"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP service: embed, verify, identify, galleries; web page at /",
        description="Serve the face models over HTTP (OpenAPI docs at /docs). The API key, if any, is read "
        f"from the environment variable {API_KEY_ENV} or from --api-key-file (never from the command line, "
        "where other users could see it); clients send it in header X-API-Key.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--gallery-root", type=Path, default=None, help="folder of named galleries (default: in memory)")
    p.add_argument(
        "--gallery-backend",
        default="auto",
        choices=("auto", "numpy", "faiss", "milvus"),
        help="vector index of galleries (default auto: faiss if installed)",
    )
    p.add_argument("--api-key-file", type=Path, default=None, help="file holding the API key (first line)")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (https://app.example) allowed to call the service from a browser (repeatable); "
        "requests from any other site are refused with 403",
    )
    p.add_argument(
        "--monitor-source",
        action="append",
        default=[],
        metavar="URL_PREFIX",
        help="let clients start stream monitors on URLs under this prefix (repeatable; default: monitors off)",
    )
    p.add_argument(
        "--no-thumbnails",
        action="store_true",
        help="do not keep a face thumbnail per enrolled identity (the Galleries page then shows names only)",
    )
    p.add_argument(
        "--allow-no-key",
        action="store_true",
        help="serve on a non-loopback --host without an API key (refused otherwise: anyone on the network "
        "could read and change the galleries)",
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="request body limit in MiB (default 10)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="image pixel limit (default 40 million)")
    p.add_argument("--max-concurrent", type=int, default=None, help="inferences at once (default: CPU cores)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_pack_options(p)
    p.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    from arcface.errors import InputError
    from arcface.serve.app import create_app
    from arcface.serve.runner import run

    api_key = os.environ.get(API_KEY_ENV) or None
    if args.api_key_file is not None:
        try:
            api_key = args.api_key_file.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise InputError(f"{args.api_key_file}: cannot read an API key from it") from exc
        if not api_key:
            raise InputError(f"{args.api_key_file}: the API key is empty")
    if args.max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if not api_key and not is_loopback(args.host):
        if not args.allow_no_key:
            raise InputError(
                f"--host {args.host} exposes the service beyond this machine, and no API key is set: set "
                f"{API_KEY_ENV} or --api-key-file (or pass --allow-no-key to serve openly anyway)"
            )
        print(
            f"arcface serve: WARNING: serving on {args.host} WITHOUT an API key: anyone who can reach this port "
            "can read, change and delete the galleries",
            file=sys.stderr,
            flush=True,
        )
    app = create_app(
        gallery_root=args.gallery_root,
        api_key=api_key,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        analyzer=analyzer_from_args(args),
        max_concurrent=args.max_concurrent,
        gallery_backend=args.gallery_backend,
        cors_origins=args.cors_origin,
        monitor_sources=args.monitor_source,
        thumbnails=not args.no_thumbnails,
    )
    where = f"http://{args.host}:{args.port}"
    print(f"arcface serve: {where}/ (web page), {where}/docs (API); auth {'on' if api_key else 'off'}", flush=True)
    run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
