"""A registry of backbone constructors: ``@register_model("name")`` and :func:`create_model`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from arcface.errors import InputError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering a constructor ``(**kwargs) -> nn.Module`` under ``name``."""

    def deco(fn: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Names of all registered backbones, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, *, num_features: int = 512, **kwargs: Any) -> nn.Module:
    """Build a registered backbone.

    Args:
        name: registry name (see :func:`list_models`), e.g. ``"iresnet50"`` or ``"mbf"``.
        num_features: embedding length (default 512).
        **kwargs: passed to the constructor (e.g. ``dropout`` for IResNets).
    Returns:
        The backbone, taking ``(N, 3, 112, 112)`` float input (RGB, ``(x - 127.5) / 127.5``) and returning
        ``(N, num_features)`` un-normalised embeddings.
    Raises:
        InputError: unknown name (the message lists the registered names).
    """
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None
    return fn(num_features=num_features, **kwargs)
