"""The embedding contract of a gallery: which model made its embeddings.

Cosine similarities are only meaningful between embeddings of the same model (same weights, same input
preprocessing, same dimension). A gallery stores one :class:`EmbeddingContract` and refuses embeddings
that come with a different one, so that templates from two models can never be mixed by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arcface.errors import InputError

#: Keys of a ModelSpec dict that change the meaning of an embedding (names/extras do not).
_SPEC_KEYS = ("input_size", "color_order", "mean", "std", "layout", "embedding_dim")


def _spec_subset(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    out: dict[str, Any] = {}
    for key in _SPEC_KEYS:
        if key in spec:
            value = spec[key]
            out[key] = (
                [float(v) if key in ("mean", "std") else v for v in value]
                if isinstance(value, (list, tuple))
                else value
            )
    return out


@dataclass(frozen=True)
class EmbeddingContract:
    """What produced a gallery's embeddings.

    Attributes:
        dim: embedding length ``D`` (every stored vector is float32, unit L2 norm, shape ``(D,)``).
        model_sha256: SHA-256 hex digest of the recognition model file (``None``: unknown).
        model_name: human-readable name of the model or pack (informative only, not compared).
        input_spec: the recogniser's input conventions (a :class:`arcface.spec.ModelSpec` dict subset:
            input size, colour order, mean/std in ``[0, 255]`` pixel units, layout, embedding dim).
    """

    dim: int
    model_sha256: str | None = None
    model_name: str | None = None
    input_spec: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or self.dim <= 0:
            raise InputError(f"embedding contract: dim must be a positive integer, got {self.dim!r}")
        object.__setattr__(self, "input_spec", _spec_subset(self.input_spec))

    @classmethod
    def from_model(cls, spec: Any, sha256: str | None = None, name: str | None = None) -> EmbeddingContract:
        """Contract of a recognition model from its :class:`~arcface.spec.ModelSpec` and file digest."""
        d = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        dim = d.get("embedding_dim")
        if not dim:
            raise InputError("embedding contract: the model spec has no embedding_dim")
        return cls(dim=int(dim), model_sha256=sha256, model_name=name, input_spec=d)

    @classmethod
    def from_analyzer(cls, analyzer: Any) -> EmbeddingContract:
        """Contract of a :class:`arcface.pipeline.FaceAnalyzer` (its recogniser's spec and pack digest)."""
        pack = getattr(analyzer, "pack", None)
        return cls.from_model(
            analyzer.embedder.spec,
            sha256=getattr(pack, "recognizer_sha256", None),
            name=getattr(pack, "name", None),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "model_sha256": self.model_sha256,
            "model_name": self.model_name,
            "input_spec": self.input_spec,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingContract:
        try:
            return cls(
                dim=int(d["dim"]),
                model_sha256=d.get("model_sha256"),
                model_name=d.get("model_name"),
                input_spec=d.get("input_spec"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"embedding contract: malformed record {d!r} ({exc})") from exc

    def describe(self) -> str:
        model = self.model_name or "unnamed model"
        digest = f"sha256 {self.model_sha256[:12]}..." if self.model_sha256 else "digest unknown"
        return f"{model} ({digest}), dim {self.dim}"

    def check_compatible(self, other: EmbeddingContract, what: str = "embeddings") -> None:
        """Raise :class:`InputError` when ``other`` cannot share a gallery with ``self``.

        Dimensions must be equal. Model digests must be equal when both are known; input specs must
        be equal when both are known. An unknown field on either side is not a conflict.
        """
        if other.dim != self.dim:
            raise InputError(
                f"{what} have dimension {other.dim} but this gallery holds {self.dim}-d embeddings "
                f"from {self.describe()}; use a gallery made with the same model"
            )
        if self.model_sha256 and other.model_sha256 and self.model_sha256 != other.model_sha256:
            raise InputError(
                f"{what} come from {other.describe()} but this gallery holds embeddings from "
                f"{self.describe()}; embeddings of different models cannot be compared "
                "(re-enrol into a new gallery)"
            )
        if self.input_spec and other.input_spec and self.input_spec != other.input_spec:
            diff = sorted(
                k
                for k in set(self.input_spec) | set(other.input_spec)
                if self.input_spec.get(k) != other.input_spec.get(k)
            )
            raise InputError(
                f"{what} were made with different input preprocessing ({', '.join(diff)} differ) than "
                f"this gallery's embeddings from {self.describe()}"
            )

    @property
    def verifiable(self) -> bool:
        """True when the contract names its model (a digest or an input spec), so others can be checked."""
        return bool(self.model_sha256 or self.input_spec)

    def check_vouches_for(self, other: EmbeddingContract | None, what: str = "embeddings") -> None:
        """Raise :class:`InputError` unless ``other`` proves it comes from this contract's model.

        Stricter than :meth:`check_compatible`: where this contract knows its model's digest (or input
        spec), ``other`` must state the same one; an unknown field on ``other``'s side is a refusal, since
        nothing then shows the embeddings come from the same model.
        """
        if other is None:
            if self.verifiable:
                raise InputError(
                    f"{what} come without a model contract, but this gallery holds embeddings of "
                    f"{self.describe()}; pass contract=EmbeddingContract.from_analyzer(analyzer) (or "
                    "EmbeddingContract.from_model(spec, sha256)) so the model can be checked"
                )
            return
        self.check_compatible(other, what)
        if self.model_sha256 and not other.model_sha256:
            raise InputError(
                f"{what}: the model contract given has no SHA-256 digest, but this gallery holds embeddings of "
                f"{self.describe()}; give the model's digest so it can be checked"
            )
        if self.input_spec and not other.input_spec:
            raise InputError(
                f"{what}: the model contract given has no input spec, but this gallery holds embeddings made "
                f"with a known preprocessing ({self.describe()}); give the model's spec so it can be checked"
            )

    def merged_with(self, other: EmbeddingContract) -> EmbeddingContract:
        """``self`` with unknown fields filled in from a compatible ``other``."""
        self.check_compatible(other)
        return EmbeddingContract(
            dim=self.dim,
            model_sha256=self.model_sha256 or other.model_sha256,
            model_name=self.model_name or other.model_name,
            input_spec=self.input_spec or other.input_spec,
        )
