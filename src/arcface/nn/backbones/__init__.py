"""Face recognition backbones (IResNet, MobileFaceNet) behind a registry."""

from arcface.nn.backbones import iresnet, mobilefacenet  # noqa: F401  (registers the models)
from arcface.nn.backbones.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
