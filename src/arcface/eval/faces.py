"""From raw photos to one aligned crop per photo, for the benchmarks that start from unaligned images.

Each photo is run through a detector (anything with ``detect(image_rgb) -> detections`` having
``boxes (N, 4)``, ``scores (N,)``, ``kps (N, 5, 2)`` in pixels, as :class:`arcface.detect.base.Detections`).
The face **closest to the image centre** is kept by default (benchmark photos such as LFW centre the subject;
ties: the larger box); ``select`` takes any rule of :func:`arcface.face.select_face`. Photos where nothing is
detected are counted and fall back to a centre crop: the central square of side ``fallback_fraction * min(H, W)``,
aligned as the template face (:func:`arcface.detect.base.center_crop_detection`, the pipeline's opt-in last resort).
Photos that cannot be read at all (truncated, not an image) are counted with their reason and replaced by a
uniform grey crop, so a protocol keeps its pairs and one bad file never stops an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arcface.detect.base import center_crop_detection
from arcface.face import select_index
from arcface.imageio import load_image

Aligner = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def default_aligner() -> Aligner:
    """:func:`arcface.align.align_faces` (imported lazily)."""
    from arcface.align import align_faces

    return align_faces


def select_face(boxes: np.ndarray, image_shape: tuple[int, ...], rule: str = "center") -> int:
    """Index of the box ``rule`` picks (default: centre nearest the image centre, ties: the larger box)."""
    h, w = image_shape[:2]
    return select_index(boxes, rule, (w, h))


@dataclass
class CropStats:
    """How many photos were processed and which fell back to a centre crop (no face detected)."""

    n_images: int = 0
    undetected: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    @property
    def n_undetected(self) -> int:
        return len(self.undetected)

    def to_dict(self, max_names: int = 50) -> dict[str, Any]:
        return {
            "n_images": self.n_images,
            "n_undetected": self.n_undetected,
            "undetected": self.undetected[:max_names],
            "n_unreadable": len(self.unreadable),
            "unreadable": [{"source": s, "error": r} for s, r in self.unreadable[:max_names]],
        }


def face_crop(
    image: np.ndarray,
    detector: Any,
    aligner: Aligner,
    size: int = 112,
    fallback_fraction: float = 0.5,
    select: str = "center",
) -> tuple[np.ndarray, bool]:
    """``(crop, detected)`` for one RGB photo: the aligned face ``select`` picks, or the centre-crop fallback."""
    det = detector.detect(image)
    if len(det) == 0:  # the pipeline's opt-in last resort: the central square, mapped as the template's face
        return aligner(image, center_crop_detection(image.shape[:2], fallback_fraction).kps, size)[0], False
    i = select_face(det.boxes, image.shape, select)
    kps = np.asarray(det.kps, dtype=np.float32)[i : i + 1]
    return aligner(image, kps, size)[0], True


def iter_face_crops(
    sources: Iterable[Any],
    detector: Any,
    aligner: Aligner | None = None,
    size: int = 112,
    fallback_fraction: float = 0.5,
    stats: CropStats | None = None,
    loader: Callable[[Any], np.ndarray] = load_image,
    select: str = "center",
) -> Iterator[np.ndarray]:
    """Aligned crops of photos (paths or bytes), one per source; fills ``stats`` as it goes."""
    from arcface.errors import InputError

    align = aligner or default_aligner()
    for src in sources:
        try:
            image = loader(src)
        except InputError as exc:
            if stats is not None:
                stats.n_images += 1
                stats.unreadable.append((str(src), str(exc)))
            yield np.full((size, size, 3), 128, np.uint8)
            continue
        crop, ok = face_crop(image, detector, align, size, fallback_fraction, select)
        if stats is not None:
            stats.n_images += 1
            if not ok:
                stats.undetected.append(str(src))
        yield crop
