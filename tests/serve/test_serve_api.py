"""Endpoints of the HTTP service through FastAPI's TestClient, on real photos."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from arcface.face import largest_face
from arcface.imageio import decode_image
from arcface.thresholds import threshold_for


def _err(resp, status: int, code: str, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code
    assert err["message"]
    if field is not None:
        assert err["field"] == field
    return err


def test_healthz_and_page(client):
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("static/app.js", "static/style.css"):
        assert asset in page.text
        assert client.get("/" + asset).status_code == 200
    # offline: no script or stylesheet from another host
    assert "http://" not in page.text and "https://" not in page.text
    assert "http" not in client.get("/static/app.js").text.replace("https://", "").split("//")[0]


def test_config_reports_pack_digest_threshold_and_limits(make_app, analyzer):
    app = make_app(max_upload_bytes=123_456, max_pixels=7_000_000)
    with TestClient(app) as c:
        cfg = c.get("/v1/config").json()
    recognizer = analyzer.pack.recognizer
    assert cfg["pack"]["recognizer_sha256"] == hashlib.sha256(recognizer.read_bytes()).hexdigest()
    assert cfg["pack"]["recognizer"] == recognizer.name
    t = threshold_for(cfg["pack"]["recognizer_sha256"])
    assert cfg["threshold"]["value"] == t.value and cfg["threshold"]["provenance"] == t.provenance
    assert cfg["recognizer_spec"]["embedding_dim"] == 512 == cfg["embedding_dim"]
    assert cfg["recognizer_spec"]["mean"] == [127.5] * 3
    assert cfg["limits"]["max_upload_bytes"] == 123_456
    assert cfg["limits"]["max_pixels"] == 7_000_000
    assert cfg["galleries"]["persistent"] is False
    # the engine running the models, and why; the threshold says which engine it applies to
    assert cfg["engine"] == analyzer.engine.to_dict() and cfg["engine"]["reason"]
    assert cfg["threshold"]["engine"] == f"{cfg['engine']['runtime']}/{cfg['engine']['precision']}"


def test_openapi_lists_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in ("/v1/embed", "/v1/verify", "/v1/identify", "/v1/config", "/healthz", "/v1/galleries/{gallery}"):
        assert p in paths
    assert set(paths["/v1/galleries/{gallery}/identities/{identity}"]) == {"get", "patch", "delete"}
    assert client.get("/docs").status_code == 200


def test_embed_matches_the_library(client, analyzer, photos):
    resp = client.post("/v1/embed", files={"image": ("players.jpg", photos["players.jpg"], "image/jpeg")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ref = analyzer.analyze(decode_image(photos["players.jpg"]))
    assert len(body["faces"]) == len(ref) > 5
    assert (body["image"]["width"], body["image"]["height"]) == (1237, 800)
    for got, want in zip(body["faces"], ref):
        emb = np.asarray(got["embedding"], np.float32)
        assert emb.shape == (512,)
        assert abs(np.linalg.norm(emb) - 1) < 1e-5
        assert float(emb @ want.embedding) > 0.9999
        np.testing.assert_allclose(got["bbox"], want.bbox, atol=0.01)
        assert np.asarray(got["kps"]).shape == (5, 2)
        x1, y1, x2, y2 = got["bbox"]
        assert all(x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1 for x, y in got["kps"])
    light = client.post("/v1/embed?embeddings=false", files={"image": ("y.jpg", photos["yaoming.jpg"])}).json()
    assert len(light["faces"]) == 1 and "embedding" not in light["faces"][0]


def test_embed_no_face_is_an_empty_list(client, blank_png):
    body = client.post("/v1/embed", files={"image": ("blank.png", blank_png, "image/png")}).json()
    assert body["faces"] == [] and body["image"] == {"width": 200, "height": 160}


def test_verify_matches_the_library(client, analyzer, photos):
    a, b = photos["yaoming.jpg"], photos["gdp.jpg"]
    resp = client.post("/v1/verify", files={"image_a": ("y.jpg", a), "image_b": ("g.jpg", b)})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    fa = largest_face(analyzer.analyze(decode_image(a)))
    faces_b = analyzer.analyze(decode_image(b))
    fb = largest_face(faces_b)
    assert body["similarity"] == pytest.approx(float(fa.embedding @ fb.embedding), abs=1e-5)
    assert body["threshold"] == threshold_for(analyzer.pack.recognizer_sha256).value
    assert body["same"] is (body["similarity"] >= body["threshold"]) is False
    assert body["faces"] == {"a": 1, "b": len(faces_b)}
    img_b = body["images"]["image_b"]
    assert len(img_b["faces"]) == len(faces_b)
    assert img_b["faces"][img_b["used"]]["bbox"] == body["face_b"]["bbox"]

    same = client.post("/v1/verify", files={"image_a": ("y.jpg", a), "image_b": ("y2.jpg", a)}).json()
    assert same["similarity"] == pytest.approx(1.0, abs=1e-4) and same["same"] is True
    forced = client.post(
        "/v1/verify", files={"image_a": ("y.jpg", a), "image_b": ("g.jpg", b)}, data={"threshold": "-0.5"}
    ).json()
    assert forced["same"] is True and forced["threshold"] == -0.5


def test_verify_same_person_on_shared_data(client, analyzer, shared_data):
    people = sorted(p for p in (shared_data / "deepface_by_identity").iterdir() if p.is_dir())
    a1, a2 = sorted(people[0].glob("*.jpg"))[:2]
    b1 = sorted(people[1].glob("*.jpg"))[0]

    def verify(x, y):
        files = {"image_a": (x.name, x.read_bytes()), "image_b": (y.name, y.read_bytes())}
        resp = client.post("/v1/verify", files=files)
        assert resp.status_code == 200, resp.text
        return resp.json()

    same, diff = verify(a1, a2), verify(a1, b1)
    assert same["similarity"] == pytest.approx(analyzer.verify(a1, a2).similarity, abs=1e-5)
    assert same["similarity"] > diff["similarity"]
    assert same["same"] is True and diff["same"] is False


def test_verify_errors_name_the_field(client, photos, blank_png):
    a = photos["yaoming.jpg"]
    _err(client.post("/v1/verify", files={"image_a": ("y.jpg", a)}), 422, "invalid_request", "image_b")
    err = _err(
        client.post("/v1/verify", files={"image_a": ("y.jpg", a), "image_b": ("x.jpg", b"not an image")}),
        422,
        "invalid_image",
        "image_b",
    )
    assert "x.jpg" in err["message"]
    truncated = a[: len(a) // 2]
    _err(
        client.post("/v1/verify", files={"image_a": ("t.jpg", truncated), "image_b": ("y.jpg", a)}),
        422,
        "invalid_image",
        "image_a",
    )
    _err(
        client.post("/v1/verify", files={"image_a": ("y.jpg", a), "image_b": ("blank.png", blank_png)}),
        422,
        "no_face",
        "image_b",
    )
    _err(
        client.post("/v1/verify", files={"image_a": ("y.jpg", a), "image_b": ("y.jpg", a)}, data={"threshold": "2"}),
        422,
        "invalid_request",
        "threshold",
    )


def test_pixel_limit(make_app, photos):
    with TestClient(make_app(max_pixels=500_000)) as c:  # players.jpg is 1237 x 800 = 0.99 MP
        err = _err(
            c.post("/v1/embed", files={"image": ("p.jpg", photos["players.jpg"])}), 422, "invalid_image", "image"
        )
        assert "1237x800" in err["message"] and "megapixels" in err["message"]
        assert c.post("/v1/embed", files={"image": ("y.jpg", photos["yaoming.jpg"])}).status_code == 200


def test_upload_limit_content_length_and_streamed(make_app, photos):
    big = photos["players.jpg"]  # 374 kB
    with TestClient(make_app(max_upload_bytes=200_000)) as c:
        err = _err(c.post("/v1/embed", files={"image": ("p.jpg", big)}), 413, "payload_too_large")
        assert "declares" in err["message"] and "200000" in err["message"]
        # no Content-Length: the body is counted while it streams in
        boundary = "xyzzy"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + big
            + f"\r\n--{boundary}--\r\n".encode()
        )

        def chunks():
            for i in range(0, len(body), 16384):
                yield body[i : i + 16384]

        resp = c.post(
            "/v1/embed", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        err = _err(resp, 413, "payload_too_large")
        assert "declares" not in err["message"]  # caught while streaming, not from the header
        assert c.post("/v1/embed", files={"image": ("y.jpg", photos["yaoming.jpg"])}).status_code == 200


def test_api_key(make_app, photos):
    with TestClient(make_app(api_key="s3cret")) as c:
        _err(c.get("/v1/config"), 401, "unauthorized")
        _err(c.get("/v1/config", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        _err(c.post("/v1/embed", files={"image": ("y.jpg", photos["yaoming.jpg"])}), 401, "unauthorized")
        _err(c.get("/v1/galleries"), 401, "unauthorized")
        assert c.get("/v1/config", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200
        spec = c.get("/openapi.json").json()
        assert any(s.get("name") == "X-API-Key" for s in spec["components"]["securitySchemes"].values())


def test_unknown_route_is_json(client):
    _err(client.get("/v1/nothing"), 404, "not_found")
