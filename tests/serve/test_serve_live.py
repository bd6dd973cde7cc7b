"""The service under uvicorn on 127.0.0.1: concurrent gallery enrolments lose nothing; real HTTP limits."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from arcface.gallery import Gallery


def test_concurrent_enrolls_lose_no_write(live_server, photos):
    url = live_server.url
    y, g = photos["yaoming.jpg"], photos["gdp.jpg"]
    with httpx.Client(base_url=url, timeout=120) as c:
        assert c.post("/v1/galleries/crowd").status_code == 201

    def enroll(i: int) -> tuple[int, dict]:
        # even: a new identity each; odd: all extend the same identity "shared" (read-modify-write race)
        name = f"person-{i:02d}" if i % 2 == 0 else "shared"
        with httpx.Client(base_url=url, timeout=120) as c:
            r = c.post(
                "/v1/galleries/crowd/identities",
                data={"name": name, "metadata": f'{{"i{i}": {i}}}'},
                files=[("images", (f"{i}.jpg", y if i % 3 else g))],
            )
            return r.status_code, r.json()

    n = 16
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(enroll, range(n)))
    assert [s for s, _ in results] == [201] * n, results

    expected = {f"person-{i:02d}": 1 for i in range(0, n, 2)} | {"shared": n // 2}
    with httpx.Client(base_url=url, timeout=60) as c:
        listed = c.get("/v1/galleries/crowd/identities").json()["identities"]
    assert {i["name"]: i["images"] for i in listed} == expected
    shared = next(i for i in listed if i["name"] == "shared")
    assert shared["metadata"] == {f"i{i}": i for i in range(1, n, 2)}  # every merge kept
    # and on disk, read by a fresh Gallery (what a restarted service would see)
    with Gallery(live_server.gallery_root / "crowd", create=False) as gal:
        assert {d["name"]: d["images"] for d in gal.list()} == expected


def test_concurrent_mixed_requests(live_server, photos):
    y, g = photos["yaoming.jpg"], photos["gdp.jpg"]

    def call(i: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=120) as c:
            if i % 2:
                return c.post("/v1/verify", files={"image_a": ("y", y), "image_b": ("g", g)}).status_code
            return c.post("/v1/embed", files={"image": ("y", y)}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(call, range(6))) == [200] * 6


def _raw_request(url: str, head: bytes, body_chunks: list[bytes]) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the whole body is sent
        data = b""
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
            part = s.recv(65536)
            if not part:
                break
            data += part
        return data


@pytest.mark.parametrize("declare_length", [True, False])
def test_upload_limit_over_real_http(live_server, declare_length):
    limit = 2_000_000  # live_server's max_upload_bytes
    boundary = b"b0undary"
    payload = b"\xff\xd8\xff" + b"\0" * (limit + 100_000)
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'
        + payload
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    if declare_length:
        head = f"POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    else:
        head = b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        chunks = [b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536]) for i in range(0, len(body), 65536)]
        chunks.append(b"0\r\n\r\n")
    head += b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\nConnection: close\r\n\r\n"
    answer = _raw_request(live_server.url, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer
