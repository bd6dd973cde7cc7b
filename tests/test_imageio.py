import struct

import cv2
import numpy as np
import pytest

from arcface.errors import InputError
from arcface.imageio import apply_orientation, decode_image, iter_image_files, load_image


def _gradient(h=48, w=64):
    y, x = np.mgrid[:h, :w]
    return np.stack([x * 4 % 256, y * 5 % 256, (x + y) * 2 % 256], axis=-1).astype(np.uint8)


def _encode(rgb, ext, params=()):
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext", [".png", ".bmp", ".webp", ".ppm"])
def test_lossless_round_trip_is_exact_rgb(ext):
    img = _gradient()
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    out = load_image(_encode(img, ext, params))
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_jpeg_round_trip_is_close_and_rgb():
    img = np.zeros((40, 40, 3), np.uint8)
    img[..., 0] = 200  # pure-ish red in RGB
    out = load_image(_encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]))
    assert out[..., 0].mean() > 190 and out[..., 2].mean() < 10


def test_path_input(tmp_path):
    img = _gradient()
    p = tmp_path / "x.png"
    p.write_bytes(_encode(img, ".png"))
    np.testing.assert_array_equal(load_image(p), img)
    np.testing.assert_array_equal(load_image(str(p)), img)


def test_grayscale_and_16bit_and_rgba():
    gray = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)
    out = load_image(cv2.imencode(".png", gray)[1].tobytes())
    assert out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out[..., 1], gray)

    img16 = (_gradient().astype(np.uint16) * 257)[..., ::-1].copy()  # BGR for cv2
    out = load_image(cv2.imencode(".png", img16)[1].tobytes())
    np.testing.assert_array_equal(out, _gradient())

    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:5, :, 3] = 255  # top half opaque, bottom half transparent
    out = load_image(cv2.imencode(".png", np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]))[1].tobytes())
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[9, 9], [255, 255, 255])  # composited over white


def _with_orientation(jpeg: bytes, orientation: int) -> bytes:
    # A minimal big-endian TIFF with one IFD entry: Orientation (0x0112), SHORT, count 1.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_reference(orientation):
    img = np.zeros((32, 48, 3), np.uint8)
    img[:8, :8] = 255  # white block in the top-left corner
    jpeg = _with_orientation(_encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 100]), orientation)
    out = load_image(jpeg)
    # Reference: the EXIF definitions of the eight orientations, as index maps.
    ref = {
        1: img,
        2: img[:, ::-1],
        3: img[::-1, ::-1],
        4: img[::-1],
        5: img.transpose(1, 0, 2),
        6: img.transpose(1, 0, 2)[:, ::-1],
        7: img.transpose(1, 0, 2)[::-1, ::-1],
        8: img.transpose(1, 0, 2)[::-1],
    }[orientation]
    assert out.shape == ref.shape
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 4
    np.testing.assert_array_equal(apply_orientation(img, orientation), ref)


def test_truncated_jpeg_is_refused():
    jpeg = _encode(_gradient(200, 200), ".jpg")
    with pytest.raises(InputError, match="truncated"):
        load_image(jpeg[: len(jpeg) // 2])


def test_jpeg_trailer_after_the_end_marker_is_accepted():
    """Trust case 8: a valid JPEG with >64 bytes after its end marker (camera trailers) was refused."""
    jpeg = _encode(_gradient(200, 200), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    ref = load_image(jpeg)
    for trailer in (b"\x00" * 65, b"MOTION-PHOTO" + bytes(range(256)) * 40, b"\xff\xd8\xff" + b"x" * 200):
        np.testing.assert_array_equal(load_image(jpeg + trailer), ref)


def test_half_jpeg_with_an_end_marker_appended_is_refused(capsys):
    """Trust case 8: a half-cut JPEG with FFD9 appended decoded with a grey lower half and was accepted."""
    jpeg = _encode(_gradient(200, 200), ".jpg")
    with pytest.raises(InputError, match="truncated JPEG.*ends early"):
        load_image(jpeg[: len(jpeg) // 2] + b"\xff\xd9")
    assert "Corrupt JPEG" not in capsys.readouterr().err  # libjpeg's own warning does not leak out
    # a real photo whose bottom-right corner is exactly grey 128 is still fine
    img = _gradient(200, 200)
    img[-40:, -40:] = 128
    out = load_image(_encode(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 100]))
    assert (out[-8:, -8:] == 128).all()


def test_jpeg_whose_header_claims_more_pixels_than_the_file_holds():
    jpeg = _encode(_gradient(64, 64), ".jpg")
    i = jpeg.index(b"\xff\xc0")
    liar = jpeg[: i + 5] + struct.pack(">HH", 8900, 8900) + jpeg[i + 9 :]
    with pytest.raises(InputError, match="claims 8900x8900 pixels but the file has only"):
        load_image(liar)


def test_16bit_conversion_is_exact_rounding_without_a_wide_copy():
    values = np.arange(65536, dtype=np.uint16)
    img16 = np.stack([values.reshape(256, 256)] * 3, -1)
    out = load_image(cv2.imencode(".png", img16)[1].tobytes())
    np.testing.assert_array_equal(out[..., 0], ((values.astype(np.uint32) + 128) // 257).reshape(256, 256))


def test_decode_budget_is_checked_from_the_header():
    deep = cv2.imencode(".png", np.zeros((600, 700, 4), np.uint16))[1].tobytes()  # 3.4 MB once decoded
    with pytest.raises(InputError, match=r"700x600 4-channel 16-bit PNG would need 3 MiB, over the limit of 2 MiB"):
        decode_image(deep, max_bytes=2 * 2**20)
    assert decode_image(deep, max_bytes=4 * 2**20).shape == (600, 700, 3)


def test_truncated_png_is_refused():
    png = _encode(_gradient(200, 200), ".png")
    with pytest.raises(InputError):
        load_image(png[: len(png) // 2])


@pytest.mark.parametrize(
    "data,match",
    [(b"", "empty"), (b"hello world, not an image", "not a supported"), (b"GIF89a....", "not a supported")],
)
def test_non_images_are_refused(data, match):
    with pytest.raises(InputError, match=match):
        load_image(data)


def test_decompression_bomb_is_refused_before_decoding():
    # A PNG header that announces 100000 x 100000 pixels; the body is garbage and never decoded.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4 + b"\x00" * 100
    with pytest.raises(InputError, match="megapixels"):
        load_image(png)
    with pytest.raises(InputError, match="megapixels"):
        decode_image(_encode(_gradient(100, 100), ".png"), max_pixels=5000)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)


def test_array_inputs():
    img = _gradient()
    np.testing.assert_array_equal(load_image(img), img)
    assert load_image(img[..., 0]).shape == (48, 64, 3)
    with pytest.raises(InputError):
        load_image(img.astype(np.float32))
    with pytest.raises(InputError):
        load_image(np.zeros((4, 4, 5), np.uint8))


def test_iter_image_files_recurses(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.jpg", "a/b/2.PNG", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = iter_image_files([tmp_path])
    assert [p.name for p in found] == ["1.jpg", "2.PNG"]
    with pytest.raises(InputError):
        iter_image_files([tmp_path / "missing"])


def test_ascii_netpbm_with_comment():
    # P2 (ASCII gray) with a comment line between the magic and the size, as AT&T-style tools write it.
    data = b"P2\n# made by hand\n3 2\n255\n0 128 255\n10 20 30\n"
    out = load_image(data)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 128, 255], [10, 20, 30]])


def test_pgm_grayscale(tmp_path):
    gray = (np.arange(30 * 20).reshape(30, 20) % 256).astype(np.uint8)
    p = tmp_path / "g.pgm"
    cv2.imwrite(str(p), gray)
    out = load_image(p)
    assert out.shape == (30, 20, 3)
    np.testing.assert_array_equal(out[..., 2], gray)
