"""The paper's model in torch: backbones, margin losses, sub-center heads, Partial FC, weight import.

Everything here needs the ``train`` extra (``pip install 'arcface[train]'``); the inference core of the
library (detect, align, ONNX embedding, verify) never imports this package.
"""

from arcface.errors import require

require("torch", "train")

from arcface.nn.backbones import create_model, list_models, register_model  # noqa: E402
from arcface.nn.margins import CombinedMarginLoss  # noqa: E402
from arcface.nn.partial_fc import PartialFC  # noqa: E402
from arcface.nn.profile import ModelProfile, profile_model  # noqa: E402
from arcface.nn.subcenter import SubCenterArcFace  # noqa: E402

__all__ = [
    "CombinedMarginLoss",
    "ModelProfile",
    "PartialFC",
    "SubCenterArcFace",
    "create_model",
    "list_models",
    "profile_model",
    "register_model",
]
