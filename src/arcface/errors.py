"""Exception types shared by every stage.

Every error a user can cause carries a message that names the input and the problem. The CLI maps
:class:`InputError` (and :class:`ModelError`) to exit code 2 and :class:`NoFaceError` to exit code 1.
"""

from __future__ import annotations


class ArcFaceError(Exception):
    """Base class of all errors raised on purpose by this library."""


class InputError(ArcFaceError, ValueError):
    """Bad user input: an unreadable image, a malformed file, an argument out of range."""


class ModelError(ArcFaceError):
    """A model pack or file is missing, altered (SHA-256 mismatch) or incompatible."""


class NoFaceError(ArcFaceError):
    """No face was found where one was required; ``image`` names the input when known."""

    def __init__(self, message: str, image: str | None = None) -> None:
        super().__init__(message)
        self.image = image


class DependencyError(ArcFaceError, ImportError):
    """An optional dependency (an extra such as ``arcface[train]``) is not installed."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`DependencyError` telling which extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            f"this feature needs the Python package {module!r}: pip install 'arcface[{extra}]'"
        ) from exc
