"""InsightFace ``.bin`` verification sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, ...).

A ``.bin`` file is a pickle of ``(list_of_jpeg_bytes, issame_list)``: the images come in consecutive
pairs ``(2i, 2i+1)`` and ``issame_list[i]`` says whether pair ``i`` shows one person. Images are aligned
face crops (normally 112x112) encoded as JPEG/PNG. The files were written by Python 2, so they are read
with ``encoding='bytes'``.

A pickle can execute arbitrary code, so :func:`load_bin` uses a restricted unpickler: the only globals it
resolves are numpy's array/scalar reconstructors (wrapped so that they build nothing but ``bool`` arrays
and scalars) and ``_codecs.encode`` (how protocol-2 pickles spell ``bytes``; only to latin-1). Anything
else - ``os.system``, ``builtins.eval``, object arrays - raises :class:`~arcface.errors.InputError`
before it can run.

Evaluation follows the usual protocol: flip test-time augmentation, 10 contiguous folds, threshold chosen
on 9 folds and applied to the 10th (accuracy mean +- std), plus TAR@FAR and EER on all pairs. Thresholds
are cosine similarities.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from arcface.errors import InputError
from arcface.eval.metrics import DEFAULT_FARS, VerificationSummary, summarize_verification
from arcface.eval.models import embed_crops
from arcface.imageio import encode_image
from arcface.io_utils import atomic_write

MAX_BIN_BYTES = 4 << 30  # refuse absurd files before reading them


class _Refused(pickle.UnpicklingError):
    pass


def _np_multiarray() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _as_str(x: Any) -> str:
    if isinstance(x, bytes):
        return x.decode("latin-1")
    if isinstance(x, str):
        return x
    raise _Refused(f"expected a string, got {type(x).__name__}")


def _safe_dtype(name: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if _as_str(name) not in ("b1", "?"):
        raise _Refused(f"numpy dtype {name!r} is not admitted (only bool)")
    return np.dtype(bool)


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise _Refused("only plain numpy.ndarray may be reconstructed")
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and 0 <= s < 1 << 31 for s in shape)):
        raise _Refused(f"bad array shape {shape!r}")
    return _np_multiarray()._reconstruct(np.ndarray, shape, _as_str(dtype))


def _safe_scalar(dtype: Any, data: Any = b"") -> np.bool_:
    if not isinstance(dtype, np.dtype) or dtype != np.dtype(bool) or not isinstance(data, bytes | str):
        raise _Refused("only numpy bool scalars are admitted")
    raw = data.encode("latin-1") if isinstance(data, str) else data
    if len(raw) != 1:
        raise _Refused("malformed numpy bool scalar")
    return np.bool_(raw[0] != 0)


def _safe_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or _as_str(encoding).lower() not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode is admitted only for latin-1 text")
    return text.encode("latin-1")


_ADMITTED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("_codecs", "encode"): _safe_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only lists, tuples, bytes, str, numbers, bools and numpy bool arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise _Refused(f"global {module}.{name} is not admitted") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("persistent ids are not admitted")


@dataclass
class BinSet:
    """A loaded verification set: encoded images (2 per pair) and the same/different flags."""

    images: list[bytes]
    issame: np.ndarray
    name: str = ""

    @property
    def n_pairs(self) -> int:
        return int(self.issame.size)


def _validate(obj: Any, where: str) -> tuple[list[bytes], np.ndarray]:
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise InputError(f"{where}: expected a pickled (images, issame) pair, got {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, list | tuple) or not all(isinstance(b, bytes | bytearray) for b in bins):
        raise InputError(f"{where}: the image list must hold encoded image bytes")
    if isinstance(issame, np.ndarray):
        if issame.dtype != np.bool_:
            raise InputError(f"{where}: issame array must have dtype bool, got {issame.dtype}")
        flags = issame.ravel().copy()
    elif isinstance(issame, list | tuple) and all(isinstance(v, bool | np.bool_) for v in issame):
        flags = np.asarray(issame, dtype=bool)
    else:
        raise InputError(f"{where}: issame must be a list of booleans or a bool array")
    if len(bins) != 2 * flags.size:
        raise InputError(f"{where}: {len(bins)} images for {flags.size} pairs (expected {2 * flags.size})")
    if flags.size == 0:
        raise InputError(f"{where}: the set holds no pairs")
    return [bytes(b) for b in bins], flags


def load_bin(path: str | os.PathLike[str]) -> BinSet:
    """Read a ``.bin`` verification set safely (restricted unpickler, structure checked).

    Raises:
        InputError: the file is missing, not a pickle, refers to a non-admitted global (e.g. a crafted
            pickle that would call ``os.system``), or does not have the ``(images, issame)`` structure.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"{p}: cannot read verification set ({exc.strerror or exc})") from exc
    if size > MAX_BIN_BYTES:
        raise InputError(f"{p}: {size} bytes is too large for a verification set")
    data = p.read_bytes()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise InputError(f"{p}: refused to load pickle: {exc}") from None
    except Exception as exc:  # malformed pickles raise many types
        raise InputError(f"{p}: not a readable .bin verification set ({type(exc).__name__}: {exc})") from None
    images, issame = _validate(obj, str(p))
    return BinSet(images=images, issame=issame, name=p.stem)


def decode_image(data: bytes, where: str = "image") -> np.ndarray:
    """Decode JPEG/PNG bytes into a ``uint8`` RGB array (grayscale is expanded to 3 channels)."""
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise InputError(f"{where}: cannot decode image bytes")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def iter_images(bin_set: BinSet) -> Iterator[np.ndarray]:
    """Decoded RGB images of a set, in file order."""
    for i, b in enumerate(bin_set.images):
        yield decode_image(b, f"{bin_set.name or 'bin'} image {i}")


def embed_bin(
    bin_set: BinSet, embedder: Any, batch_size: int = 64, flip: bool = True, show_progress: bool = False
) -> np.ndarray:
    """Embeddings ``(2 * n_pairs, D)`` of a set's images (resized to the embedder input when needed)."""
    return embed_crops(
        embedder,
        iter_images(bin_set),
        batch_size=batch_size,
        flip=flip,
        total=len(bin_set.images),
        desc=bin_set.name or "bin",
        show_progress=show_progress,
    )


def pair_scores(embeddings: np.ndarray) -> np.ndarray:
    """Cosine score of each consecutive pair ``(2i, 2i+1)`` of unit embeddings."""
    e = np.asarray(embeddings, dtype=np.float32)
    return np.sum(e[0::2] * e[1::2], axis=1).astype(np.float64)


def evaluate_bin(
    bin_set: BinSet | str | os.PathLike[str],
    embedder: Any,
    batch_size: int = 64,
    flip: bool = True,
    n_folds: int = 10,
    fars: Sequence[float] = DEFAULT_FARS,
    show_progress: bool = False,
) -> VerificationSummary:
    """10-fold accuracy +- std, best cosine threshold, EER and TAR@FAR of ``embedder`` on a ``.bin`` set."""
    bs = bin_set if isinstance(bin_set, BinSet) else load_bin(bin_set)
    emb = embed_bin(bs, embedder, batch_size=batch_size, flip=flip, show_progress=show_progress)
    summary = summarize_verification(pair_scores(emb), bs.issame, fars=fars, n_folds=n_folds)
    summary.extra.update({"dataset": bs.name, "n_images": len(bs.images), "flip": flip})
    return summary


def _encode(img: Any, quality: int, where: str) -> bytes:
    if isinstance(img, bytes | bytearray):
        return bytes(img)
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"{where}: expected uint8 RGB (H, W, 3) or encoded bytes, got {arr.dtype} {arr.shape}")
    return encode_image(arr, ".jpg", quality, where)


def write_bin(path: str | os.PathLike[str], images: Sequence[Any], issame: Sequence[bool], quality: int = 95) -> Path:
    """Write a ``.bin`` verification set (atomically: temp file + rename).

    Args:
        images: ``2 * len(issame)`` aligned faces, pairs consecutive; each a ``uint8`` RGB array (encoded
            as JPEG at ``quality``) or already-encoded image bytes.
        issame: one boolean per pair.
    """
    flags = [bool(v) for v in issame]
    if len(images) != 2 * len(flags) or not flags:
        raise InputError(f"write_bin: {len(images)} images for {len(flags)} pairs (expected 2 per pair)")
    blobs = [_encode(im, quality, f"image {i}") for i, im in enumerate(images)]
    out = Path(path)
    with atomic_write(out) as f:
        pickle.dump((blobs, flags), f, protocol=4)
    return out
