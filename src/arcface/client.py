"""A Python client for ``arcface serve``: the library's own results, over HTTP.

::

    from arcface.client import Client

    c = Client("http://127.0.0.1:8000", api_key="...")
    res = c.verify("a.jpg", "b.jpg")                 # arcface.verify.VerifyResult
    faces = c.embed("group.jpg")                     # list[arcface.Face] with embeddings
    c.create_gallery("staff")
    c.enroll("staff", "ada", ["ada1.jpg", "ada2.jpg"])
    for face, result in c.identify("door.jpg", "staff"):   # (Face, arcface.gallery.SearchResult)
        print(result.identity, result.similarity)

Images are paths, encoded bytes, or uint8 arrays (sent as PNG; ``color="bgr"`` for OpenCV arrays). The client
uses only the standard library. A ``503`` (the service is busy) is retried with exponential back-off
(``retries`` times); any other error raises :class:`ServiceError` carrying the service's ``{"error": {"code",
"message", "field"}}``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arcface.face import Face
from arcface.gallery.gallery import Match, SearchResult
from arcface.verify import VerifyResult

API_KEY_HEADER = "X-API-Key"
ImageLike = str | os.PathLike | bytes | np.ndarray


class ServiceError(Exception):
    """An error answered by the service (or no answer at all: ``status`` 0, code ``unreachable``).

    Attributes:
        status: the HTTP status.
        code: the service's error code (``unauthorized``, ``gallery_not_found``, ``no_face``, ``invalid_image``, ...).
        message: its message.
        field: the request field it names, if any.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status, self.code, self.message, self.field = status, code, message, field


def _face(d: dict[str, Any]) -> Face:
    emb = d.get("embedding")
    return Face(
        bbox=np.asarray(d["bbox"], np.float32),
        score=float(d["score"]),
        kps=np.asarray(d["kps"], np.float32).reshape(5, 2),
        embedding=None if emb is None else np.asarray(emb, np.float32),
        path=str(d.get("path", "detector")),
    )


def _search_result(d: dict[str, Any]) -> SearchResult:
    matches = [Match(m["identity"], float(m["similarity"]), m["candidate"]) for m in d.get("matches", [])]
    sim = d.get("similarity")
    return SearchResult(d["identity"], None if sim is None else float(sim), matches)


class Client:
    """A client of one ``arcface serve`` instance.

    Args:
        url: the service's base URL (``http://host:port``).
        api_key: sent in ``X-API-Key`` when given.
        timeout: seconds per request.
        retries: how many times a ``503`` is retried (back-off ``backoff * 2**attempt`` seconds).
        backoff: the first back-off, in seconds.
    """

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = 60.0, retries: int = 3, backoff: float = 0.5
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    # ------------------------------------------------------------------ transport
    def _request(
        self,
        method: str,
        path: str,
        fields: dict[str, Any] | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        data = None
        if files or fields:
            boundary = uuid.uuid4().hex
            data = _multipart(boundary, fields or {}, files)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key is not None:  # sent as its UTF-8 bytes (http.client writes header values as latin-1)
            headers[API_KEY_HEADER] = self.api_key.encode("utf-8").decode("latin-1")
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as exc:
                payload = exc.read()
                if exc.code == 503 and attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise _error(exc.code, payload) from None
            except urllib.error.URLError as exc:
                raise ServiceError(0, "unreachable", f"{self.url}: {exc.reason}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ faces
    def config(self) -> dict[str, Any]:
        """Models, digests, the threshold with its provenance, limits (``GET /v1/config``)."""
        return self._request("GET", "/v1/config")

    def embed(self, image: ImageLike, color: str = "rgb") -> list[Face]:
        """Every face of ``image`` with its embedding (pixels of that image)."""
        out = self._request("POST", "/v1/embed", files=[_file("image", image, color)])
        return [_face(f) for f in out["faces"]]

    def verify(
        self,
        a: ImageLike,
        b: ImageLike,
        threshold: float | None = None,
        color: str = "rgb",
        face_a: int | None = None,
        face_b: int | None = None,
        select: str = "largest",
    ) -> VerifyResult:
        """The face of ``a`` against the face of ``b`` that ``select`` picks (``largest``, ``center``,
        ``center_largest``), or the faces at index ``face_a``/``face_b`` (in the order of :meth:`embed`)."""
        fields = {} if threshold is None else {"threshold": str(threshold)}
        if select != "largest":
            fields["select"] = select
        for key, index in (("face_a", face_a), ("face_b", face_b)):
            if index is not None:
                fields[key] = str(index)
        out = self._request(
            "POST", "/v1/verify", fields=fields, files=[_file("image_a", a, color), _file("image_b", b, color)]
        )
        return VerifyResult(
            similarity=float(out["similarity"]),
            same=bool(out["same"]),
            threshold=float(out["threshold"]),
            threshold_provenance=out["threshold_provenance"],
            faces=(int(out["faces"]["a"]), int(out["faces"]["b"])),
            notes=list(out.get("notes", [])),
            face_a=_face(out["face_a"]) if out.get("face_a") else None,
            face_b=_face(out["face_b"]) if out.get("face_b") else None,
        )

    def identify(
        self, image: ImageLike, gallery: str, top_k: int = 5, threshold: float | None = None, color: str = "rgb"
    ) -> list[tuple[Face, SearchResult]]:
        """Every face of ``image`` with its answer from ``gallery``."""
        fields = {"gallery": gallery, "top_k": str(top_k)}
        if threshold is not None:
            fields["threshold"] = str(threshold)
        out = self._request("POST", "/v1/identify", fields=fields, files=[_file("image", image, color)])
        return [(_face(f), _search_result(f)) for f in out["faces"]]

    # ------------------------------------------------------------------ galleries
    def galleries(self) -> list[str]:
        return list(self._request("GET", "/v1/galleries")["galleries"])

    def create_gallery(self, name: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/galleries/{_q(name)}")

    def gallery(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/galleries/{_q(name)}")

    def delete_gallery(self, name: str) -> None:
        self._request("DELETE", f"/v1/galleries/{_q(name)}")

    def identities(self, gallery: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/v1/galleries/{_q(gallery)}/identities")["identities"])

    def enroll(
        self,
        gallery: str,
        name: str,
        images: Sequence[ImageLike],
        metadata: dict[str, Any] | None = None,
        replace: bool = False,
        color: str = "rgb",
    ) -> dict[str, Any]:
        """Enrol (or extend) identity ``name`` with the largest face of each image (all or none)."""
        fields = {"name": name, "replace": "true" if replace else "false"}
        if metadata is not None:
            fields["metadata"] = json.dumps(metadata)
        files = [_file("images", im, color) for im in images]
        return self._request("POST", f"/v1/galleries/{_q(gallery)}/identities", fields=fields, files=files)

    def rename(self, gallery: str, old: str, new: str) -> dict[str, Any]:
        return self._request("PATCH", f"/v1/galleries/{_q(gallery)}/identities/{_q(old)}", body={"name": new})

    def remove(self, gallery: str, identity: str) -> None:
        self._request("DELETE", f"/v1/galleries/{_q(gallery)}/identities/{_q(identity)}")


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _error(status: int, payload: bytes) -> ServiceError:
    try:
        err = json.loads(payload)["error"]
        return ServiceError(status, str(err.get("code")), str(err.get("message")), err.get("field"))
    except (ValueError, KeyError, TypeError):
        return ServiceError(status, "http_error", payload[:200].decode("utf-8", "replace"))


def _file(field: str, image: ImageLike, color: str) -> tuple[str, str, bytes]:
    """``(field, filename, bytes)`` of an image: files and bytes as they are, arrays encoded as PNG."""
    if isinstance(image, bytes):
        return field, "image", image
    if isinstance(image, np.ndarray):
        from arcface.imageio import encode_image, load_image

        return field, "array.png", encode_image(load_image(image, color=color), ".png", name=field)
    p = Path(image)
    return field, p.name, p.read_bytes()


def _multipart(boundary: str, fields: dict[str, Any], files: Sequence[tuple[str, str, bytes]]) -> bytes:
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, filename, data in files:
        safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)
