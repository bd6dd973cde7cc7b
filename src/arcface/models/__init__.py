"""The model registry (timm-style): model cards, pack cards, detector families, one resolver.

* :mod:`arcface.models.cards`: the records and the registry functions.
* :mod:`arcface.models.catalog`: what is registered (digests, licences, sources, published figures).
* :mod:`arcface.models.packfile`: the ``pack.json`` schema.
* :mod:`arcface.models.packs`: finding a pack's files on disk (``load_pack``) and checking their digests.
* :mod:`arcface.models.resolve`: ``parse_model`` / ``resolve_pack`` / ``resolve_embedder``.
"""

from arcface.models import catalog
from arcface.models.cards import (
    DetectorFamily,
    ModelCard,
    PackCard,
    card_for_file,
    detector_families,
    detector_family,
    get_model,
    get_pack,
    model_cards,
    pack_cards,
    register_detector_family,
    register_model,
    register_pack,
)
from arcface.models.catalog import DEFAULT_PACK, INSIGHTFACE_LICENCE
from arcface.models.packfile import PackFile
from arcface.models.packs import Pack, list_packs, load_pack
from arcface.models.resolve import ModelRef, parse_model, resolve_embedder, resolve_pack

__all__ = [
    "DEFAULT_PACK",
    "INSIGHTFACE_LICENCE",
    "DetectorFamily",
    "ModelCard",
    "ModelRef",
    "PackCard",
    "Pack",
    "PackFile",
    "card_for_file",
    "catalog",
    "detector_families",
    "detector_family",
    "get_model",
    "get_pack",
    "list_packs",
    "load_pack",
    "model_cards",
    "pack_cards",
    "parse_model",
    "register_detector_family",
    "register_model",
    "register_pack",
    "resolve_embedder",
    "resolve_pack",
]
