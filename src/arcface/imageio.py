"""Image decoding with clear errors.

:func:`load_image` returns ``uint8`` arrays of shape ``(H, W, 3)`` in **RGB** order, values ``[0, 255]``,
whatever the input: JPEG, PNG, WebP, BMP or Netpbm (PBM/PGM/PPM) given as a path or as bytes, or an in-memory array.

- EXIF orientation (JPEG) is applied, so the array is upright as a viewer shows it.
- Grayscale is replicated to 3 channels; 16-bit images are scaled to 8 bits (``v // 257``, rounded);
  an alpha channel is composited over a white background.
- The pixel count is read from the file header *before* decoding, and files above ``max_pixels``
  (default :data:`MAX_PIXELS`, 80 megapixels) are refused (decompression bombs).
- Truncated files, unknown formats and non-image files raise :class:`~arcface.errors.InputError`
  naming the input.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from arcface.errors import InputError

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

#: Default limit on width x height before decoding (80 megapixels, e.g. 10000 x 8000).
MAX_PIXELS = 80_000_000

SUPPORTED_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "Netpbm (PBM/PGM/PPM)")


def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:2] == b"BM":
        return "BMP"
    if data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PNM"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + seg_len
    return None


def _header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) read from the header, or None if the header is incomplete."""
    try:
        if fmt == "JPEG":
            return _jpeg_size(data)
        if fmt == "PNG":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if fmt == "BMP":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if fmt == "PNM":  # "P5 <width> <height> ...", '#' comments allowed between fields
            fields = re.sub(rb"#[^\n]*", b"", data[2:1024]).split()
            return int(fields[0]), int(fields[1])
        if fmt == "WebP":
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                bits = int.from_bytes(b, "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _exif_orientation(data: bytes) -> int:
    """EXIF orientation tag (1..8) of a JPEG, 1 when absent or unreadable."""
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            break
        (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
        seg = data[i + 4 : i + 2 + seg_len]
        if marker == 0xE1 and seg[:6] == b"Exif\x00\x00":
            tiff = seg[6:]
            if len(tiff) < 8:
                return 1
            endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
            if endian is None:
                return 1
            try:
                (ifd,) = struct.unpack(endian + "I", tiff[4:8])
                (count,) = struct.unpack(endian + "H", tiff[ifd : ifd + 2])
                for k in range(count):
                    off = ifd + 2 + 12 * k
                    tag, typ = struct.unpack(endian + "HH", tiff[off : off + 4])
                    if tag == 0x0112 and typ == 3:
                        (value,) = struct.unpack(endian + "H", tiff[off + 8 : off + 10])
                        return value if 1 <= value <= 8 else 1
            except struct.error:
                return 1
            return 1
        i += 2 + seg_len
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an image so that an EXIF ``orientation`` (1..8) becomes 1 (upright)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),  # transpose
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],  # rotate 90 degrees clockwise
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transverse
        8: lambda a: a.transpose(1, 0, 2)[::-1],  # rotate 90 degrees counter-clockwise
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(image)) if op else image


def _to_rgb8(arr: np.ndarray, name: str, assume_bgr: bool) -> np.ndarray:
    """Any decoded array (gray, 3 or 4 channels, uint8 or uint16) -> uint8 RGB."""
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InputError(f"{name}: unsupported pixel type {arr.dtype} (expected uint8 or uint16)")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"{name}: expected an image of shape (H, W[, 1|3|4]), got {arr.shape}")
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    rgb = arr[:, :, :3]
    if assume_bgr:
        rgb = rgb[:, :, ::-1]
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = rgb.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into uint8 RGB ``(H, W, 3)``; see the module docstring."""
    data = bytes(data)
    if not data:
        raise InputError(f"{name}: empty file")
    fmt = _sniff(data)
    if fmt is None:
        raise InputError(f"{name}: not a supported image (formats: {', '.join(SUPPORTED_FORMATS)})")
    size = _header_size(data, fmt)
    if size is None:
        raise InputError(f"{name}: truncated or corrupt {fmt} header")
    w, h = size
    if w <= 0 or h <= 0:
        raise InputError(f"{name}: {fmt} header gives an empty image ({w}x{h})")
    if w * h > max_pixels:
        raise InputError(
            f"{name}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.1f} (possible decompression bomb; raise max_pixels if intended)"
        )
    if fmt == "JPEG" and b"\xff\xd9" not in data[-64:]:
        raise InputError(f"{name}: truncated JPEG (no end-of-image marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise InputError(f"{name}: corrupt or truncated {fmt} data (decoder failed)")
    if arr.ndim == 3 and arr.shape[:2] != (h, w):
        raise InputError(f"{name}: decoded size {arr.shape[1]}x{arr.shape[0]} differs from header {w}x{h}")
    rgb = _to_rgb8(arr, name, assume_bgr=True)
    if fmt == "JPEG":
        rgb = apply_orientation(rgb, _exif_orientation(data))
    return rgb


def load_image(src: ImageInput, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load an image as uint8 RGB ``(H, W, 3)``.

    Args:
        src: a path, encoded bytes, or an array. Arrays are taken as **RGB** (or gray, or RGBA),
            ``uint8`` or ``uint16``; use ``image[..., ::-1]`` first if you hold an OpenCV BGR array.
        max_pixels: refuse images whose header announces more pixels than this.
    Raises:
        InputError: unreadable path, unsupported or corrupt data, too many pixels.
    """
    if isinstance(src, np.ndarray):
        return _to_rgb8(src, "<array>", assume_bgr=False)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return decode_image(bytes(src), "<bytes>", max_pixels)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not an image")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
        return decode_image(data, str(path), max_pixels)
    raise InputError(f"unsupported image input of type {type(src).__name__} (give a path, bytes or an array)")


def save_image(path: str | os.PathLike, image_rgb: np.ndarray) -> None:
    """Write an RGB uint8 image; the format follows the file extension."""
    ok = cv2.imwrite(str(path), np.ascontiguousarray(image_rgb[:, :, ::-1]))
    if not ok:
        raise InputError(f"{path}: could not write image (unknown extension or unwritable folder)")


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".pbm", ".pgm", ".ppm", ".pnm")


def iter_image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image file paths."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out
