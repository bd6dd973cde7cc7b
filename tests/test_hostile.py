"""A crafted corpus of hostile inputs through the CLI and the live service, under memory limits.

Every file is made here: decompression bombs (pixel count, 16-bit depth), lying headers, truncations,
non-images, a pickle that would run code. Each CLI run is a subprocess with a hard address-space cap
(``RLIMIT_AS`` 3 GiB, so a regression cannot take the machine down) and its peak RSS is read from the
kernel (``wait4``); the service is a real ``arcface serve`` process on loopback whose peak RSS is read
from ``/proc/PID/status`` (``VmHWM``). Asserted: exit 2 / HTTP 4xx, a message naming the input, peak RSS
under 1 GiB, and no code run.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from net import free_port

GiB = 1 << 30
AS_LIMIT = 3 * GiB


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(w: int, h: int, depth: int = 8, colour: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def _lying_jpeg(real: bytes, w: int, h: int) -> bytes:
    """A small real JPEG whose SOF0 header is patched to claim ``w`` x ``h`` pixels."""
    i = real.index(b"\xff\xc0")
    return real[: i + 5] + struct.pack(">HH", h, w) + real[i + 9 :]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, vectron_dir) -> dict[str, Path]:
    """``{name: path}`` of hostile files; every one must be refused with exit 2 / a 4xx."""
    root = tmp_path_factory.mktemp("hostile")
    real = (vectron_dir / "yaoming.jpg").read_bytes()
    files: dict[str, bytes] = {
        "bomb-100000x100000.png": _png_header_only(100_000, 100_000),
        "bomb-bmp-60000x60000.bmp": b"BM" + b"\x00" * 16 + struct.pack("<ii", 60_000, 60_000) + b"\x01\x00\x18\x00",
        "lying-jpeg-8900x8900.jpg": _lying_jpeg(real, 8900, 8900),
        "truncated-half.jpg": real[: len(real) // 2],
        "truncated-half-with-eoi.jpg": real[: len(real) // 2] + b"\xff\xd9",
        "header-only.png": real[:0] + b"\x89PNG\r\n\x1a\n",
        "text-named.jpg": b"this is not an image\n" * 10,
        "empty.png": b"",
        "webp-claims-16383x16383.webp": b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + b"\xfe\x3f\x00\xfe\x3f\x00",
    }
    deep = np.zeros((6250, 6400, 4), np.uint16)  # 335 kB as a PNG; 320 MB once decoded at 16 bits
    deep[::97, ::89] = 65535
    ok, buf = cv2.imencode(".png", deep)
    assert ok
    files["deep-16bit-6400x6250.png"] = buf.tobytes()
    del deep
    out = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def heavy_valid(tmp_path_factory) -> dict[str, Path]:
    """Valid images without faces that used to take gigabytes (padded retry of the full-resolution image)."""
    root = tmp_path_factory.mktemp("heavy")
    out = {}
    for name, (h, w) in {"wide-20000x1000.png": (1000, 20000), "wide-79000x500.png": (500, 79000)}.items():
        cv2.imwrite(str(root / name), np.zeros((h, w, 3), np.uint8))
        out[name] = root / name
    return out


def run_capped(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """``(exit code, stderr, peak RSS bytes)`` of ``python -m arcface ARGS`` under the address-space cap."""
    from cli_spawn import spawn_cli

    code, _, err, rss = spawn_cli(args, as_limit=AS_LIMIT, timeout=600)
    return code, err, rss


def test_cli_refuses_every_hostile_file_alone(corpus: dict[str, Path], tmp_path: Path) -> None:
    for name, path in corpus.items():
        code, err, rss = run_capped(["detect", str(path)], tmp_path)
        assert code == 2, f"{name}: exit {code}, {err}"
        assert name in err and "Traceback" not in err and err.count("\n") == 1, f"{name}: {err!r}"
        assert rss < GiB, f"{name}: peak RSS {rss / 2**20:.0f} MiB"


def test_cli_batch_lists_every_hostile_file_and_survives(corpus: dict[str, Path], vectron_dir, tmp_path) -> None:
    folder = next(iter(corpus.values())).parent
    code, err, rss = run_capped(["embed", str(folder), "--out", str(tmp_path / "none.npz")], tmp_path)
    assert code == 2 and "no file could be read" in err  # nothing readable at all
    for name in corpus:
        assert f"skipped {folder / name}: " in err, f"{name} not reported"
    assert rss < GiB and "Traceback" not in err
    # one good photo among them: it is embedded, the rest are listed, exit 0
    (folder / "good.jpg").write_bytes((vectron_dir / "yaoming.jpg").read_bytes())
    try:
        code, err, rss = run_capped(["embed", str(folder), "--out", str(tmp_path / "one.npz")], tmp_path)
    finally:
        (folder / "good.jpg").unlink()
    assert code == 0, err
    with np.load(tmp_path / "one.npz") as z:
        assert z["embeddings"].shape == (1, 512) and z["paths"][0].endswith("good.jpg")
        assert sorted(Path(p).name for p in z["error_paths"]) == sorted(corpus)
    assert rss < GiB


def test_cli_heavy_valid_images_stay_bounded(heavy_valid: dict[str, Path], tmp_path: Path) -> None:
    for name, path in heavy_valid.items():
        code, err, rss = run_capped(["detect", str(path)], tmp_path)
        assert code == 1, f"{name}: exit {code}, {err}"  # a valid image without a face
        assert rss < GiB, f"{name}: peak RSS {rss / 2**20:.0f} MiB"


def test_cli_eval_bin_pickle_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "lfw.bin"
    evil.write_bytes(pickle.dumps(([_Evil(marker)], [True])))
    code, err, _ = run_capped(["eval", "bin", str(evil), "--quiet"], tmp_path)
    assert code == 2 and "lfw.bin" in err and "Traceback" not in err
    assert not marker.exists()


# --------------------------------------------------------------------------------------------- service


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def live_service(tmp_path_factory):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    port = free_port()
    root = tmp_path_factory.mktemp("svc")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

    proc = subprocess.Popen(
        [sys.executable, "-m", "arcface", "serve", "--port", str(port), "--gallery-root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=limit,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"arcface serve did not start: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield url, proc
    proc.terminate()
    proc.wait(10)


def test_service_refuses_every_hostile_file(live_service, corpus: dict[str, Path], heavy_valid) -> None:
    import httpx

    url, proc = live_service
    for name, path in corpus.items():
        r = httpx.post(url + "/v1/embed", files={"image": (name, path.read_bytes())}, timeout=60)
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text[:200]}"
        err = r.json()["error"]
        assert name in err["message"] and err["field"] == "image", f"{name}: {err}"
    # three 16-bit bombs at once: decoding is budgeted from the header and bounded by the inference slots
    deep = corpus["deep-16bit-6400x6250.png"].read_bytes()
    with httpx.Client(timeout=60) as c:
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(c.post(url + "/v1/embed", files={"image": ("d.png", deep)}).status_code)
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [422, 422, 422]
    for name, path in heavy_valid.items():  # 60 kB and 116 kB PNGs with no face: answered, bounded
        data = path.read_bytes()
        if len(data) > 2_000_000:
            continue
        r = httpx.post(url + "/v1/embed", files={"image": (name, data)}, timeout=120)
        assert r.status_code == 200 and r.json()["faces"] == [], f"{name}: {r.text[:200]}"
    assert proc.poll() is None
    assert _peak_rss(proc.pid) < GiB, f"service peak RSS {_peak_rss(proc.pid) / 2**20:.0f} MiB"
    health = httpx.get(url + "/healthz").json()
    assert health["status"] == "ok" and health["self_test"]["recognizer"] == "ok"
    assert json.loads(httpx.get(url + "/v1/config").text)["limits"]["max_decode_bytes"] == 256 * 2**20
