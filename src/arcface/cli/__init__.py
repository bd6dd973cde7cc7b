"""The ``arcface`` command.

Each sub-command lives in a small module of this package that exposes ``register(subparsers)``; the
module adds its parser(s) and sets ``func`` to a handler ``(argparse.Namespace) -> int``. Handlers import
heavy dependencies (torch, faiss, fastapi) lazily so that ``arcface verify`` starts fast.

Exit codes: 0 success; 1 "no face" or "not the same person"; 2 bad input, model or environment problem
(one line on stderr; ``--debug`` adds the traceback).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import traceback
from collections.abc import Sequence

from arcface.errors import ArcFaceError, DependencyError, InputError, ModelError, NoFaceError

# Sub-command modules, in the order they appear in ``arcface --help``.
COMMAND_MODULES: list[str] = [
    "arcface.cli.infer",
    "arcface.cli.models",
    "arcface.cli.gallery",
    "arcface.cli.video",
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

EXIT_CODES_HELP = (
    "exit status: 0 success; 1 a negative answer (no face found, not the same person); 2 bad input, model or "
    "environment error (one line on stderr; --debug prints the traceback)"
)


def _add_exit_help(parser: argparse.ArgumentParser) -> None:
    """Append the exit codes to the ``--help`` of ``parser`` and of every sub-command under it."""
    parser.epilog = f"{parser.epilog}\n\n{EXIT_CODES_HELP}" if parser.epilog else EXIT_CODES_HELP
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _add_exit_help(sub)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    from arcface import __version__

    parser = argparse.ArgumentParser(
        prog="arcface", description="ArcFace face recognition toolkit (detect, align, embed, verify, ...)."
    )
    parser.add_argument("--version", action="version", version=f"arcface {__version__}")
    parser.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_exit_help(parser)
    return parser


def _fail(args: argparse.Namespace | None, message: str, code: int = EXIT_BAD_INPUT) -> int:
    if args is not None and getattr(args, "debug", False):
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    hint = {errno.ENOSPC: " (the disk is full)", errno.EROFS: " (read-only file system)"}.get(exc.errno or 0, "")
    return f"arcface: error: {where}{exc.strerror or exc}{hint}"


#: Cycles numpy's OpenBLAS threads spin after a product before they sleep, in a process arcface owns, as a power
#: of two (OpenBLAS's default is 28: about 0.1 s). Spinning, they take the cores from the models that run next: a
#: photo analysed right after a float32 gallery search took 38.6 against 23.4 ms (benchmarks/bench_blas_spin.py).
BLAS_THREAD_TIMEOUT = "4"


def own_process() -> None:
    """Settings of a process that is arcface's own (the console script, and so the service it starts): numpy's
    BLAS threads sleep soon after each product (:data:`BLAS_THREAD_TIMEOUT`; OpenBLAS reads it once, when numpy
    loads, so this runs before anything imports numpy). A value already in the environment is kept. (ONNX
    Runtime's pools stop spinning after each run in every process: :func:`arcface.runtime.thread_pool_mode`.)"""
    import os

    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)


def run() -> int:
    """The ``arcface`` console script: :func:`own_process`, then :func:`main`."""
    own_process()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arcface`` console script; returns the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args))
    except NoFaceError as exc:
        return _fail(args, f"arcface: {exc}", EXIT_NEGATIVE)
    except (InputError, ModelError, DependencyError, ArcFaceError) as exc:
        return _fail(args, f"arcface: error: {exc}")
    except BrokenPipeError:  # the reader went away (`arcface models list | head`): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # disk full, read-only folder, permissions
        return _fail(args, _os_error(exc))
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except MemoryError:
        return _fail(args, "arcface: error: out of memory (try smaller inputs or --det-size)")
    except Exception as exc:  # a bug: still one line and a documented exit code; --debug shows where
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(args, f"arcface: internal error: {type(exc).__name__}: {first} (rerun with --debug for details)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
