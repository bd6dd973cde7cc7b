"""Training data: ImageFolder and InsightFace RecordIO datasets, augmentation, a resumable sampler.

Images are decoded to ``uint8`` RGB ``(112, 112, 3)``, augmented in numpy/cv2, then normalised with
:data:`arcface.spec.ARCFACE_RECOGNITION` (RGB, ``(x - 127.5) / 127.5`` so values lie in ``[-1, 1]``)
into float32 CHW tensors.

Every random choice of the augmentation comes from a per-sample seed that the sampler derives from
``(seed, epoch, position)``: the data stream is a pure function of the sampler state, so training resumes
exactly, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from arcface.errors import InputError
from arcface.imageio import encode_image
from arcface.spec import ARCFACE_RECOGNITION
from arcface.train.recordio import CorruptRecordError, RecordReader, image_index_range, unpack_payload
from arcface.train.shifts import draw_mask, low_resolution

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}
IMAGE_SIZE = 112


def decode_rgb(data: bytes, size: int = IMAGE_SIZE, resize: bool = False) -> np.ndarray:
    """Decode image bytes to ``uint8`` RGB ``(size, size, 3)``.

    Training images must be aligned ``size`` x ``size`` face crops (``arcface data align`` makes them from raw
    photos). Another size is refused unless ``resize`` is set, which squashes the whole image to the size.

    Raises:
        InputError: the bytes are not a decodable image; NotAlignedError: the image is not ``size`` x ``size``
            and ``resize`` is off.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise InputError("undecodable image bytes")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[0] != size or img.shape[1] != size:
        if not resize:
            raise NotAlignedError(
                f"image is {img.shape[1]}x{img.shape[0]}, not a {size}x{size} aligned face crop: make crops with "
                f"'arcface data align RAW_DIR OUT_DIR' (or set data.resize=true to squash whole images)"
            )
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


class NotAlignedError(InputError):
    """A training image is not an aligned crop of the expected size (and resizing was not asked for)."""


# --------------------------------------------------------------------------------------------- augmentation
@dataclass
class Augment:
    """Random augmentation of a ``uint8`` RGB face crop.

    Attributes:
        flip: probability of a horizontal flip.
        color: strength of brightness/contrast/saturation jitter (0 disables; 0.2 = +-20%).
        blur: probability of a Gaussian blur (sigma uniform in [0.1, 1.5] pixels).
        crop: maximal fraction of the side removed by a random crop that is resized back (0 disables).
        mask: probability of drawing a synthetic face mask from the template landmarks
            (:func:`arcface.train.shifts.draw_mask`; for masked-face fine-tuning).
        lowres: probability of reducing the crop to a side drawn from ``lowres_sides`` (pixels) and enlarging
            it back (:func:`arcface.train.shifts.low_resolution`; for small, distant faces).
    """

    flip: float = 0.5
    color: float = 0.0
    blur: float = 0.0
    crop: float = 0.0
    mask: float = 0.0
    lowres: float = 0.0
    lowres_sides: tuple[int, int] = (10, 28)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        if self.mask > 0 and rng.random() < self.mask:
            img = draw_mask(img, rng=rng)
        if self.lowres > 0 and rng.random() < self.lowres:
            img = low_resolution(img, int(rng.integers(self.lowres_sides[0], self.lowres_sides[1] + 1)))
        if self.crop > 0:
            frac = rng.uniform(0.0, self.crop)
            ch, cw = int(round(h * (1 - frac))), int(round(w * (1 - frac)))
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            img = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
        if self.color > 0:
            f = img.astype(np.float32)
            b, c, s = 1 + rng.uniform(-self.color, self.color, size=3)
            f = f * b
            mean = f.mean()
            f = (f - mean) * c + mean
            gray = f.mean(axis=2, keepdims=True)
            f = (f - gray) * s + gray
            img = np.clip(f, 0, 255).astype(np.uint8)
        if self.blur > 0 and rng.random() < self.blur:
            img = cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(0.1, 1.5)))
        if self.flip > 0 and rng.random() < self.flip:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)


def to_tensor(img_rgb: np.ndarray) -> torch.Tensor:
    """``uint8`` RGB HxWx3 -> float32 CHW tensor normalised per ``ARCFACE_RECOGNITION`` ([-1, 1])."""
    return torch.from_numpy(ARCFACE_RECOGNITION.preprocess(img_rgb[None])[0])


# ------------------------------------------------------------------------------------------------- datasets
def read_list_file(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Read a ``key<TAB>label`` list (as written by ``arcface clean``)."""
    out: list[tuple[str, int]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read list file ({exc})") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rsplit("\t", 1)
        try:
            out.append((parts[0], int(parts[1])))
        except (IndexError, ValueError) as exc:
            raise InputError(f"{path}:{lineno}: expected 'key<TAB>label', got {line!r}") from exc
    return out


class FaceDataset(Dataset):
    """Base class: ``keys`` (one string per sample), integer ``labels`` in ``[0, num_classes)``.

    ``dataset[i]`` or ``dataset[(i, seed)]`` returns ``(image CHW float32 in [-1, 1], label)``; with a seed
    the augmentation is applied with ``np.random.default_rng(seed)``.
    """

    keys: list[str]
    labels: np.ndarray
    augment: Augment | None
    resize: bool = False

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def load_rgb(self, i: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_crops(self, probes: int = 16) -> None:
        """Decode up to ``probes`` samples spread over the dataset and refuse it, naming a file, when they are
        not aligned crops of the training size (unless ``resize``); corrupt samples are left to training."""
        if self.resize or not len(self.keys):
            return
        for i in np.unique(np.linspace(0, len(self.keys) - 1, num=min(probes, len(self.keys))).astype(int)):
            try:
                self.load_rgb(int(i))
            except NotAlignedError:
                raise
            except (InputError, OSError):
                continue

    def apply_list(self, list_file: str | os.PathLike) -> None:
        """Keep only the samples named in ``list_file`` (``key<TAB>label``; the label there wins)."""
        wanted = read_list_file(list_file)
        pos = {k: i for i, k in enumerate(self.keys)}
        missing = [k for k, _ in wanted if k not in pos]
        if missing:
            raise InputError(f"{list_file}: {len(missing)} keys are not in the dataset (first: {missing[0]!r})")
        self._select([pos[k] for k, _ in wanted], np.array([lab for _, lab in wanted], dtype=np.int64))

    def _select(self, idx: Sequence[int], labels: np.ndarray) -> None:
        self.keys = [self.keys[i] for i in idx]
        self.labels = labels

    def keep(self, idx: Sequence[int]) -> None:
        """Keep only the samples at positions ``idx`` (labels unchanged)."""
        idx = np.asarray(idx, dtype=np.int64)
        self._select(idx.tolist(), self.labels[idx])

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = (item, None) if isinstance(item, int | np.integer) else item
        index = int(index)
        for attempt in range(len(self.keys)):
            j = (index + attempt) % len(self.keys)
            try:
                img = self.load_rgb(j)
            except NotAlignedError:
                raise
            except (InputError, OSError) as exc:
                self.runtime_corrupt = getattr(self, "runtime_corrupt", 0) + 1
                log.warning("skipping corrupt sample %s (%s); %d so far", self.keys[j], exc, self.runtime_corrupt)
                continue
            if self.augment is not None and seed is not None:
                img = self.augment(img, np.random.default_rng(seed))
            return to_tensor(img), int(self.labels[j])
        raise InputError("every sample of the dataset is corrupt")


class ImageFolderDataset(FaceDataset):
    """``root/<identity>/<image>``: one folder per identity, labels by sorted folder name.

    Keys are paths relative to ``root`` (POSIX separators).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        augment: Augment | None = None,
        list_file: str | None = None,
        resize: bool = False,
    ):
        self.root = Path(root)
        self.resize = resize
        if not self.root.is_dir():
            raise InputError(f"{self.root}: image folder not found")
        classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        keys, labels = [], []
        for c, name in enumerate(classes):
            files = sorted(
                p for p in (self.root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            for f in files:
                keys.append(f.relative_to(self.root).as_posix())
                labels.append(c)
        if not keys:
            raise InputError(f"{self.root}: no images in identity sub-folders")
        self.classes = classes
        self.keys = keys
        self.labels = np.asarray(labels, dtype=np.int64)
        self.augment = augment
        self.num_corrupt = 0
        if list_file:
            self.apply_list(list_file)

    def read_bytes(self, i: int) -> bytes:
        return (self.root / self.keys[i]).read_bytes()

    def load_rgb(self, i: int) -> np.ndarray:
        try:
            return decode_rgb(self.read_bytes(i), resize=self.resize)
        except InputError as exc:
            raise type(exc)(f"{self.root / self.keys[i]}: {exc}") from None


class RecordIODataset(FaceDataset):
    """InsightFace ``train.rec``/``train.idx`` (no mxnet). Keys are record indices as strings.

    Image labels are read from the record headers at construction (a few dozen bytes per record);
    records whose header is malformed are skipped and counted in :attr:`num_corrupt`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        augment: Augment | None = None,
        list_file: str | None = None,
        resize: bool = False,
    ):
        rec = resolve_rec(path)
        self.resize = resize
        self.reader = RecordReader(rec)
        indices, _ = image_index_range(self.reader)
        keys, labels = [], []
        self.num_corrupt = 0
        for i in indices:
            try:
                h = self.reader.read_header(i)
            except CorruptRecordError as exc:
                self.num_corrupt += 1
                log.warning("%s", exc)
                continue
            keys.append(str(i))
            labels.append(int(h.label[0]))
        if not keys:
            raise InputError(f"{rec}: no readable image records")
        if self.num_corrupt:
            log.warning("%s: skipped %d corrupt records", rec, self.num_corrupt)
        self.keys = keys
        self.labels = np.asarray(labels, dtype=np.int64)
        self.augment = augment
        if list_file:
            self.apply_list(list_file)

    def read_bytes(self, i: int) -> bytes:
        return unpack_payload(self.reader.read(int(self.keys[i])))[1]

    def load_rgb(self, i: int) -> np.ndarray:
        try:
            return decode_rgb(self.read_bytes(i), resize=self.resize)
        except InputError as exc:
            raise type(exc)(f"{self.reader.rec_path} record {self.keys[i]}: {exc}") from None


def resolve_rec(path: str | os.PathLike) -> Path:
    """``X.rec`` or a folder holding ``train.rec`` -> the ``.rec`` path."""
    p = Path(path)
    if p.is_dir() and (p / "train.rec").is_file():
        return p / "train.rec"
    if p.suffix == ".rec" and p.is_file():
        return p
    if p.with_suffix(".rec").is_file() and p.suffix != ".rec":
        return p.with_suffix(".rec")
    raise InputError(f"{path}: no RecordIO file (expected X.rec or a folder with train.rec)")


def open_dataset(
    path: str | os.PathLike,
    augment: Augment | None = None,
    list_file: str | None = None,
    resize: bool = False,
    check: bool = True,
) -> FaceDataset:
    """Open a RecordIO file/folder or an ImageFolder, whichever ``path`` is.

    ``resize``: accept images that are not 112x112 (squashed); otherwise such images are refused
    (:class:`NotAlignedError`), checked on a sample at opening when ``check``."""
    p = Path(path)
    if not p.exists() and not p.with_suffix(".rec").exists():
        raise InputError(f"{path}: dataset not found")
    if p.suffix == ".rec" or (p.is_dir() and (p / "train.rec").is_file()) or p.with_suffix(".rec").is_file():
        ds: FaceDataset = RecordIODataset(p, augment, list_file, resize)
    else:
        ds = ImageFolderDataset(p, augment, list_file, resize)
    if check:
        ds.check_crops()
    return ds


# -------------------------------------------------------------------------------------------------- sampler
def sample_seed(base_seed: int, epoch: int, position: int) -> int:
    """Augmentation seed of the sample at ``position`` (global) of ``epoch``."""
    return int(np.random.SeedSequence([base_seed, epoch, position]).generate_state(1)[0])


class ResumableSampler(Sampler):
    """Shuffling, rank-sharded sampler that can start in the middle of an epoch.

    Each epoch is a permutation of ``range(n)`` seeded by ``(seed, epoch)``, cut to a multiple of
    ``world_size`` (drop_last, like ``DistributedSampler(drop_last=True)``); rank ``r`` takes positions
    ``r, r + world_size, ...``. Yields ``(dataset_index, augmentation_seed)`` pairs. ``start`` skips the
    first samples of this rank's share (resume).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if n < world_size:
            raise InputError(f"dataset of {n} samples is smaller than the world size {world_size}")
        self.n, self.seed, self.rank, self.world_size, self.shuffle = n, seed, rank, world_size, shuffle
        self.epoch = 0
        self.start = 0

    @property
    def num_samples(self) -> int:
        return self.n // self.world_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.num_samples - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = np.random.default_rng([self.seed, self.epoch])
            perm = g.permutation(self.n)
        else:
            perm = np.arange(self.n)
        total = self.num_samples * self.world_size
        positions = range(self.rank + self.start * self.world_size, total, self.world_size)
        for pos in positions:
            yield int(perm[pos]), sample_seed(self.seed, self.epoch, pos)


# ------------------------------------------------------------------------------------------ info and packing
def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """Images, identities, per-identity count histogram and corrupt-record count of a dataset."""
    ds = open_dataset(path)
    counts = np.bincount(ds.labels, minlength=ds.num_classes)
    per_id = Counter(int(c) for c in counts)
    edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9]
    hist = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        label = (str(lo) if hi - 1 == lo else f"{lo}-{hi - 1}") if hi < 10**9 else f">={lo}"
        hist[label] = int(sum(v for k, v in per_id.items() if lo <= k < hi))
    return {
        "path": str(path),
        "format": "recordio" if isinstance(ds, RecordIODataset) else "imagefolder",
        "images": len(ds),
        "identities": int((counts > 0).sum()),
        "num_classes": ds.num_classes,
        "images_per_identity": {
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "mean": float(counts.mean()),
            "max": int(counts.max()),
        },
        "histogram": hist,
        "corrupt_records": int(getattr(ds, "num_corrupt", 0)),
    }


def pack_folder(
    root: str | os.PathLike, out_prefix: str | os.PathLike, progress: bool = True, resize: bool = False
) -> tuple[Path, Path]:
    """Pack an ImageFolder of 112x112 aligned crops into ``OUT_PREFIX.rec``/``.idx``.

    JPEG crops are copied as they are, others re-encoded as JPEG. An image of another size is refused
    (:class:`NotAlignedError`, naming it) unless ``resize``, which squashes it to 112x112."""
    from arcface.train.recordio import write_insightface_rec

    ds = ImageFolderDataset(root)  # refuses a wrong size, naming the file; resize is applied here

    def samples():
        for i in range(len(ds)):
            data = ds.read_bytes(i)
            try:
                rgb, exact = ds.load_rgb(i), True
            except NotAlignedError:
                if not resize:
                    raise
                rgb, exact = decode_rgb(data, resize=True), False
            if not (exact and data.startswith(b"\xff\xd8")):
                data = encode_image(rgb, ".jpg", name=str(ds.root / ds.keys[i]))
            yield data, int(ds.labels[i])

    return write_insightface_rec(out_prefix, samples(), num_samples=len(ds), progress=progress)


class ArrayDataset(FaceDataset):
    """In-memory ``uint8`` RGB images ``(N, 112, 112, 3)`` with integer labels (tests, synthetic data)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: Augment | None = None):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise InputError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise InputError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.keys = [str(i) for i in range(len(images))]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.augment = augment
        self.num_corrupt = 0
        self._rows = np.arange(len(images))

    def _select(self, idx: Sequence[int], labels: np.ndarray) -> None:
        self._rows = self._rows[np.asarray(idx, dtype=np.int64)]
        super()._select(idx, labels)

    def load_rgb(self, i: int) -> np.ndarray:
        return self.images[self._rows[i]]
