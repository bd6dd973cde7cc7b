"""The ``arcface`` command.

Each sub-command lives in a small module of this package that exposes ``register(subparsers)``; the
module adds its parser(s) and sets ``func`` to a handler ``(argparse.Namespace) -> int``. Handlers import
heavy dependencies (torch, faiss, fastapi) lazily so that ``arcface verify`` starts fast.

Exit codes: 0 success; 1 "no face" or "not the same person"; 2 bad input or model problem.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from arcface.errors import ArcFaceError, DependencyError, InputError, ModelError, NoFaceError

# Sub-command modules, in the order they appear in ``arcface --help``.
COMMAND_MODULES: list[str] = [
    "arcface.cli.infer",
    "arcface.cli.models",
    "arcface.cli.gallery",
    "arcface.cli.evaluate",
    "arcface.cli.train",
    "arcface.cli.nn",
    "arcface.cli.export",
    "arcface.cli.invert",
    "arcface.cli.serve",
]

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    from arcface import __version__

    parser = argparse.ArgumentParser(
        prog="arcface", description="ArcFace face recognition toolkit (detect, align, embed, verify, ...)."
    )
    parser.add_argument("--version", action="version", version=f"arcface {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arcface`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except NoFaceError as exc:
        print(f"arcface: {exc}", file=sys.stderr)
        return EXIT_NEGATIVE
    except (InputError, ModelError, DependencyError) as exc:
        print(f"arcface: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ArcFaceError as exc:
        print(f"arcface: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"arcface: error: file not found: {exc.filename}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
