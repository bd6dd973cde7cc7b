"""``pack.json``: the one schema of a pack folder's description, read by the pack loader, written by export.

Fields (JSON object)::

    {"format": 1,
     "name": "my_pack",                      # optional, informative
     "detector": "det.onnx",                 # file inside the folder
     "detector_family": "scrfd",             # a registered detector family (default "scrfd")
     "recognizer": "rec.onnx",               # file inside the folder
     "detector_spec": {...},                 # optional ModelSpec dicts (see arcface.spec)
     "recognizer_spec": {...},
     "licence": "..."}                       # optional: the weights' licence, shown by `arcface models list`

File names must stay inside the folder (no absolute paths, no ``..``). Unknown keys are refused, so a
typo is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcface.errors import InputError, ModelError
from arcface.spec import ModelSpec

FILE_NAME = "pack.json"
FORMAT = 1
_KEYS = {"format", "name", "detector", "detector_family", "recognizer", "detector_spec", "recognizer_spec", "licence"}


@dataclass(frozen=True)
class PackFile:
    """The contents of a ``pack.json``."""

    detector: str
    recognizer: str
    detector_family: str = "scrfd"
    detector_spec: ModelSpec | None = None
    recognizer_spec: ModelSpec | None = None
    name: str | None = None
    licence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT}
        if self.name:
            d["name"] = self.name
        d.update(detector=self.detector, detector_family=self.detector_family, recognizer=self.recognizer)
        if self.detector_spec is not None:
            d["detector_spec"] = self.detector_spec.to_dict()
        if self.recognizer_spec is not None:
            d["recognizer_spec"] = self.recognizer_spec.to_dict()
        if self.licence:
            d["licence"] = self.licence
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = FILE_NAME) -> PackFile:
        """Validate and parse; :class:`ModelError` naming ``where`` and the field at fault."""
        if not isinstance(d, dict):
            raise ModelError(f"{where}: a pack description must be a JSON object")
        unknown = sorted(set(d) - _KEYS)
        if unknown:
            raise ModelError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
        if d.get("format", FORMAT) != FORMAT:
            raise ModelError(f"{where}: format {d.get('format')!r} is not supported (this arcface reads {FORMAT})")
        for key in ("detector", "recognizer"):
            value = d.get(key)
            if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
                raise ModelError(
                    f"{where}: {key!r} must name the {key}'s .onnx file inside the pack folder (got {value!r})"
                )
        specs: dict[str, ModelSpec | None] = {}
        for key in ("detector_spec", "recognizer_spec"):
            if key not in d:
                specs[key] = None
                continue
            if not isinstance(d[key], dict):
                raise ModelError(f"{where}: {key!r} must be a JSON object (a ModelSpec)")
            try:
                specs[key] = ModelSpec.from_dict(d[key])
            except (InputError, TypeError, ValueError, KeyError) as exc:
                raise ModelError(f"{where}: malformed {key} ({exc})") from None
        family = d.get("detector_family", "scrfd")
        if not isinstance(family, str) or not family:
            raise ModelError(f"{where}: 'detector_family' must be a family name such as 'scrfd'")
        return cls(
            detector=d["detector"],
            recognizer=d["recognizer"],
            detector_family=family,
            detector_spec=specs["detector_spec"],
            recognizer_spec=specs["recognizer_spec"],
            name=d.get("name") if isinstance(d.get("name"), str) else None,
            licence=d.get("licence") if isinstance(d.get("licence"), str) else None,
        )

    @classmethod
    def read(cls, directory: str | Path) -> PackFile | None:
        """The folder's ``pack.json``, or ``None`` when it has none."""
        path = Path(directory) / FILE_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: unreadable pack description ({exc})") from exc
        return cls.from_dict(data, str(path))

    def write(self, directory: str | Path) -> Path:
        """Write ``pack.json`` into ``directory`` atomically; returns its path."""
        from arcface.io_utils import atomic_write_text

        return atomic_write_text(Path(directory) / FILE_NAME, json.dumps(self.to_dict(), indent=2) + "\n")
