"""Image decoding with clear errors.

:func:`load_image` returns ``uint8`` arrays of shape ``(H, W, 3)`` in **RGB** order, values ``[0, 255]``,
whatever the input: JPEG, PNG, WebP, BMP or Netpbm (PBM/PGM/PPM) given as a path or as bytes, or an in-memory array.

- EXIF orientation (JPEG) is applied, so the array is upright as a viewer shows it.
- Grayscale is replicated to 3 channels; 16-bit images are scaled to 8 bits (``v // 257``, rounded);
  an alpha channel is composited over a white background.
- Budgets are checked from the file header *before* decoding: the pixel count (``max_pixels``, default
  :data:`MAX_PIXELS`, 80 megapixels) and the memory the decoder needs (``max_bytes``, default
  :data:`MAX_DECODE_BYTES`, 256 MiB: width x height x channels x bytes per sample as the file stores
  them, plus the coefficient buffer of a progressive JPEG). A 335 kB 16-bit PNG that would need 2 GB, or
  a small JPEG whose header claims 8900x8900 pixels, is refused before any pixel is decoded.
- JPEG: the markers are walked to the end-of-image marker (bytes after it, such as a camera's trailer,
  are allowed); a file without one, or one whose scan data ends early (a half file with an end marker
  appended: libjpeg fills the missing blocks with grey and warns), is refused as truncated.
- Truncated files, unknown formats and non-image files raise :class:`~arcface.errors.InputError`
  naming the input.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from arcface.errors import InputError

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray

#: Default limit on width x height before decoding (80 megapixels, e.g. 10000 x 8000).
MAX_PIXELS = 80_000_000

#: Default limit on the decoder's memory, estimated from the header before decoding (256 MiB).
MAX_DECODE_BYTES = 256 * 1024 * 1024

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


@dataclass(frozen=True)
class Header:
    """What a file header says before decoding: size, channels and bytes per sample as stored."""

    width: int
    height: int
    channels: int = 3
    sample_bytes: int = 1
    progressive: bool = False

    @property
    def decode_bytes(self) -> int:
        """Bytes the decoder allocates: its output array, plus (progressive JPEG) one int16 per coefficient."""
        out = self.width * self.height * max(3, self.channels) * self.sample_bytes
        coef = self.width * self.height * self.channels * 2 if self.progressive else 0
        return out + coef


def _jpeg_header(data: bytes) -> Header | None:
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
            if i + 10 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            comps = data[i + 9]
            progressive = marker in (0xC2, 0xC6, 0xCA, 0xCE)
            return Header(w, h, max(1, comps), 2 if data[i + 4] > 8 else 1, progressive)
        i += 2 + seg_len
    return None


_ENTROPY_MARKER = re.compile(rb"\xff(?!\x00|\xff|[\xd0-\xd7])", re.DOTALL)


def jpeg_end(data: bytes) -> int | None:
    """Offset just past the JPEG's end-of-image marker found by walking its segments and scans.

    Returns ``None`` when the data ends first (a truncated file). Bytes after the end marker (trailers
    that cameras and phones append) are not part of the image and do not matter.
    """
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None  # garbage where a marker must be
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if i + 4 > n:
            return None
        (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + seg_len
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            m = _ENTROPY_MARKER.search(data, i)
            if m is None:
                return None
            i = m.start()
    return None


def _png_header(data: bytes) -> Header:
    w, h = struct.unpack(">II", data[16:24])
    depth, colour = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}.get(colour, 4)  # palette decodes to 3 channels
    return Header(w, h, channels, 2 if depth == 16 else 1)


def _header(data: bytes, fmt: str) -> Header | None:
    """The header of ``data``, or None if it is incomplete."""
    try:
        if fmt == "JPEG":
            return _jpeg_header(data)
        if fmt == "PNG":
            return _png_header(data)
        if fmt == "BMP":
            w, h = struct.unpack("<ii", data[18:26])
            (bits,) = struct.unpack("<H", data[28:30])
            return Header(abs(w), abs(h), 4 if bits == 32 else 3)
        if fmt == "PNM":  # "P5 <width> <height> [<maxval>] ...", '#' comments allowed between fields
            fields = re.sub(rb"#[^\n]*", b"", data[2:1024]).split()
            kind = data[1:2]
            deep = kind in b"2356" and len(fields) > 2 and int(fields[2]) > 255
            return Header(int(fields[0]), int(fields[1]), 3 if kind in b"36" else 1, 2 if deep else 1)
        if fmt == "WebP":
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return Header(w & 0x3FFF, h & 0x3FFF)
            if chunk == b"VP8L":
                b = data[21:25]
                bits = int.from_bytes(b, "little")
                return Header((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4)
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return Header(w, h, 4)
    except (struct.error, ValueError, IndexError):
        return None
    return None


def _header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) read from the header, or None if the header is incomplete."""
    head = _header(data, fmt)
    return None if head is None else (head.width, head.height)


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
    if arr.size == 0:
        raise InputError(f"{name}: empty image (shape {arr.shape})")
    if arr.dtype == np.uint16:
        # round(v / 257) straight into uint8, without a wider temporary copy
        arr = cv2.convertScaleAbs(np.ascontiguousarray(arr), alpha=1.0 / 257.0)
    elif arr.dtype != np.uint8:
        raise InputError(f"{name}: unsupported pixel type {arr.dtype} (expected uint8 or uint16)")
    if arr.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2RGB)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"{name}: expected an image of shape (H, W[, 1|3|4]), got {arr.shape}")
    if arr.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2RGB)
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB) if assume_bgr else rgb
    if assume_bgr:
        arr = np.ascontiguousarray(arr)
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)  # in place: no second full-size copy
    return np.ascontiguousarray(arr)


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _capture_stderr() -> Iterator[list[bytes]]:
    """Capture what native code writes to file descriptor 2 (libjpeg's warnings) into the yielded list."""
    out: list[bytes] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read())


_LIBJPEG_WARNING = re.compile(rb"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters)[^\n]*\n?", re.M)


def _imdecode_jpeg(data: bytes) -> tuple[np.ndarray | None, bool]:
    """``cv2.imdecode`` of a JPEG with libjpeg's stderr warnings captured; ``(array, scan_cut_short)``.

    libjpeg fills blocks past the end of the scan data with grey and only warns on stderr ("premature
    end of data segment"); that warning is how a half file with an end marker appended is recognised.
    Other output written to stderr meanwhile is passed through.
    """
    with _capture_stderr() as captured:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    text = captured[0]
    cut_short = b"premature end of data" in text.lower() or b"premature end of jpeg" in text.lower()
    rest = _LIBJPEG_WARNING.sub(b"", text)
    if rest:
        os.write(2, rest)
    return arr, cut_short


def decode_image(
    data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_DECODE_BYTES
) -> np.ndarray:
    """Decode encoded image bytes into uint8 RGB ``(H, W, 3)``; see the module docstring.

    Args:
        data: the encoded file.
        name: how the input is named in errors (a path, an upload field).
        max_pixels: refuse images whose header announces more pixels than this.
        max_bytes: refuse images whose decoding needs more memory than this (estimated from the header).
    """
    data = bytes(data)
    if not data:
        raise InputError(f"{name}: empty file")
    fmt = _sniff(data)
    if fmt is None:
        raise InputError(f"{name}: not a supported image (formats: {', '.join(SUPPORTED_FORMATS)})")
    head = _header(data, fmt)
    if head is None:
        raise InputError(f"{name}: truncated or corrupt {fmt} header")
    w, h = head.width, head.height
    if w <= 0 or h <= 0:
        raise InputError(f"{name}: {fmt} header gives an empty image ({w}x{h})")
    if w * h > max_pixels:
        raise InputError(
            f"{name}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.1f} (possible decompression bomb; raise max_pixels if intended)"
        )
    if head.decode_bytes > max_bytes:
        kind = f"{head.channels}-channel {8 * head.sample_bytes}-bit" + (" progressive" if head.progressive else "")
        raise InputError(
            f"{name}: decoding this {w}x{h} {kind} {fmt} would need {head.decode_bytes / 2**20:.0f} MiB, over the "
            f"limit of {max_bytes / 2**20:.0f} MiB (possible decompression bomb; raise max_bytes if intended)"
        )
    if fmt == "JPEG" and not head.progressive and len(data) * 8 < ((w + 7) // 8) * ((h + 7) // 8):
        # a sequential scan spends at least one bit on every 8x8 block of luma: the file cannot hold the image
        raise InputError(
            f"{name}: JPEG header claims {w}x{h} pixels but the file has only {len(data)} bytes, too few to "
            "encode them (a lying header or a truncated file)"
        )
    cut_short = False
    if fmt == "JPEG":
        end = jpeg_end(data)
        if end is None:
            raise InputError(f"{name}: truncated JPEG (the data ends before its end-of-image marker)")
        data = data[:end]
        arr, cut_short = _imdecode_jpeg(data)
    else:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise InputError(f"{name}: corrupt or truncated {fmt} data (decoder failed)")
    if cut_short:
        raise InputError(f"{name}: truncated JPEG (its scan data ends early; the decoder filled the rest with grey)")
    if arr.shape[:2] != (h, w):
        raise InputError(f"{name}: decoded size {arr.shape[1]}x{arr.shape[0]} differs from header {w}x{h}")
    rgb = _to_rgb8(arr, name, assume_bgr=True)
    del arr
    if fmt == "JPEG":
        rgb = apply_orientation(rgb, _exif_orientation(data))
    return rgb


#: Channel orders an array may come in (``color=`` of :func:`load_image` and the analyzer).
COLORS = ("rgb", "bgr")


def load_image(
    src: ImageInput, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_DECODE_BYTES, color: str = "rgb"
) -> np.ndarray:
    """Load an image as uint8 RGB ``(H, W, 3)``.

    Args:
        src: a path, encoded bytes, or an array. Arrays are taken in the channel order ``color`` (gray and
            RGBA/BGRA too), ``uint8`` or ``uint16``.
        max_pixels: refuse images whose header announces more pixels than this.
        max_bytes: refuse images whose decoding would need more memory than this (from the header).
        color: ``"rgb"`` (the default, the library's order) or ``"bgr"`` (OpenCV's: an array from ``cv2.imread``
            or a video frame from ``cv2.VideoCapture``); ignored for paths and bytes, which are decoded.
    Raises:
        InputError: unreadable path, unsupported or corrupt data, over a budget, an empty array, an unknown
            ``color``.
    """
    if color not in COLORS:
        raise InputError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(src, np.ndarray):
        if color == "bgr":
            return _to_rgb8(np.array(src), "<array>", assume_bgr=True)  # a copy: the caller's array is not touched
        return _to_rgb8(src, "<array>", assume_bgr=False)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return decode_image(bytes(src), "<bytes>", max_pixels, max_bytes)
    if isinstance(src, (str, os.PathLike)):
        return decode_image(read_file(src), os.fspath(src), max_pixels, max_bytes)
    raise InputError(f"unsupported image input of type {type(src).__name__} (give a path, bytes or an array)")


#: Largest file :func:`read_file` reads (no image format needs more for 80 megapixels).
MAX_FILE_BYTES = 512 * 1024 * 1024


def read_file(src: str | os.PathLike, max_file_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of an input file, with errors that name it (empty path, folder, link loop, too large)."""
    text = os.fspath(src)
    if not text:
        raise InputError("an empty string was given as a file path")
    path = Path(text)
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: symbolic link loop") from None
        if exc.errno == errno.ENOENT and path.is_symlink():
            raise InputError(f"{path}: broken symbolic link (its target does not exist)") from None
        if exc.errno == errno.ENOENT:
            raise InputError(f"{path}: no such file") from None
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    if st.st_size > max_file_bytes:
        raise InputError(f"{path}: {st.st_size / 2**20:.0f} MiB, over the {max_file_bytes / 2**20:.0f} MiB file limit")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def encode_image(image_rgb: np.ndarray, ext: str = ".jpg", quality: int | None = None, name: str = "image") -> bytes:
    """The bytes of a uint8 RGB ``(H, W, 3)`` image encoded as ``ext`` (``".jpg"``, ``".png"``, ...); ``quality``:
    JPEG quality 0-100 (OpenCV's default 95 when ``None``). :class:`InputError` naming ``name`` if it fails."""
    params = [] if quality is None else [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise InputError(f"{name}: cannot encode as {ext}")
    return buf.tobytes()


def save_image(path: str | os.PathLike, image_rgb: np.ndarray) -> None:
    """Write an RGB uint8 image; the format follows the file extension."""
    ext = Path(path).suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise InputError(
            f"{path}: unknown image extension {ext or '(none)'!r}; use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    try:
        ok = cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR))
    except cv2.error as exc:
        raise InputError(f"{path}: could not write image ({str(exc).strip().splitlines()[-1]})") from None
    if not ok:
        raise InputError(f"{path}: could not write image (unwritable folder or full disk?)")


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


def identity_folders(root: str | os.PathLike) -> dict[str, list[Path]]:
    """identity name -> its photos (sorted, recursive), for every non-hidden sub-folder of ``root`` holding photos
    (the ``ROOT/<identity>/<photos>`` layout of galleries and training data)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found")
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = iter_image_files([d])
        if photos:
            out[d.name] = photos
    return out
