"""The OpenAPI document tells the truth: every response has a schema, and every error the service answers (401,
403, 404, 409, 413, 422) is documented with, and validates against, the real ``{"error": {...}}`` shape."""

from __future__ import annotations

import pytest

from arcface.serve.app import ERROR_RESPONSES, ErrorBody

KEY = "k-123"


@pytest.fixture(scope="module")
def keyed(make_app, tmp_path_factory):
    from fastapi.testclient import TestClient

    app = make_app(gallery_root=tmp_path_factory.mktemp("contract"), api_key=KEY, max_upload_bytes=50_000)
    with TestClient(app) as c:
        yield c


def test_every_operation_documents_its_responses(keyed):
    spec = keyed.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    assert "ErrorBody" in spec["components"]["schemas"] and "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                content = resp.get("content", {})
                assert content, f"{method.upper()} {path} {status}: no schema"
                assert any("schema" in c for c in content.values()), f"{method.upper()} {path} {status}"
            if path.startswith("/v1/"):
                for status in ("401", "404", "413", "422"):
                    schema = op["responses"][status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": error_ref}, (method, path, status)


def test_every_error_answered_validates_against_the_documented_shape(keyed, vectron_dir):
    h = {"X-API-Key": KEY}
    photo = (vectron_dir / "yaoming.jpg").read_bytes()
    seen = {
        401: keyed.get("/v1/config"),
        403: keyed.get("/v1/config", headers={**h, "Origin": "https://evil.example"}),
        404: keyed.get("/v1/galleries/nope", headers=h),
        413: keyed.post("/v1/embed", headers=h, files={"image": ("big.jpg", b"\xff\xd8" + b"0" * 60_000)}),
        422: keyed.post("/v1/embed", headers=h, files={"image": ("x.jpg", b"not an image")}),
    }
    keyed.post("/v1/galleries/dup", headers=h)
    seen[409] = keyed.post("/v1/galleries/dup", headers=h)
    seen["422-form"] = keyed.post("/v1/verify", headers=h, files={"image_a": ("a.jpg", photo)})  # a missing field
    for status, resp in seen.items():
        code = int(str(status)[:3])
        assert resp.status_code == code, (status, resp.text)
        assert code in ERROR_RESPONSES
        body = ErrorBody.model_validate(resp.json())
        assert body.error.code and body.error.message


def _extra_keys(model, where: str = "") -> list[str]:
    """Keys of a validated body (recursively) that its model does not declare."""
    from pydantic import BaseModel

    found = [f"{where}.{k}" for k in (model.__pydantic_extra__ or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for i, v in enumerate(items):
            if isinstance(v, BaseModel):
                found += _extra_keys(v, f"{where}.{name}[{i}]")
    return found


def _small_jpeg(path, side: int = 360) -> bytes:
    import cv2

    img = cv2.imread(str(path))
    scale = min(1.0, side / max(img.shape[:2]))
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    assert len(data) < 24_000
    return data


def test_every_answer_matches_its_documented_model(keyed, vectron_dir, shared_data):
    """Each 2xx body the routes answer validates against the model ``/openapi.json`` names for it, with no
    undeclared key (the schemas are the truth, not a loose description)."""
    import re

    from arcface.serve import schemas

    h = {"X-API-Key": KEY}
    spec = keyed.get("/openapi.json").json()
    people = shared_data / "face_recognition_by_identity"
    group = _small_jpeg(shared_data / "multi_face" / "obama_and_biden.jpg")  # under the app's 50 kB limit
    one = _small_jpeg(people / "obama" / "obama.jpg")
    calls = [
        ("get", "/healthz", "/healthz", {}),
        ("get", "/v1/config", "/v1/config", {}),
        ("post", "/v1/embed", "/v1/embed", {"files": {"image": ("g.jpg", group)}}),
        ("post", "/v1/verify", "/v1/verify", {"files": {"image_a": ("a.jpg", group), "image_b": ("b.jpg", one)}}),
        ("post", "/v1/galleries/{gallery}", "/v1/galleries/typed", {}),
        (
            "post",
            "/v1/galleries/{gallery}/identities",
            "/v1/galleries/typed/identities",
            {"data": {"name": "obama", "metadata": '{"team": 1}'}, "files": {"images": ("o.jpg", one)}},
        ),
        ("get", "/v1/galleries", "/v1/galleries", {}),
        ("get", "/v1/galleries/{gallery}", "/v1/galleries/typed", {}),
        ("get", "/v1/galleries/{gallery}/identities", "/v1/galleries/typed/identities", {}),
        ("get", "/v1/galleries/{gallery}/identities/{identity}", "/v1/galleries/typed/identities/obama", {}),
        (
            "post",
            "/v1/identify",
            "/v1/identify",
            {"data": {"gallery": "typed"}, "files": {"image": ("g.jpg", group)}},
        ),
        (
            "patch",
            "/v1/galleries/{gallery}/identities/{identity}",
            "/v1/galleries/typed/identities/obama",
            {"json": {"name": "barack"}},
        ),
        ("delete", "/v1/galleries/{gallery}/identities/{identity}", "/v1/galleries/typed/identities/barack", {}),
        ("delete", "/v1/galleries/{gallery}", "/v1/galleries/typed", {}),
        ("get", "/v1/monitors", "/v1/monitors", {}),
    ]
    for method, documented, url, kw in calls:
        resp = getattr(keyed, method)(url, headers=h, **kw)
        assert resp.is_success, (url, resp.text)
        if url in ("/v1/embed", "/v1/identify"):
            assert len(resp.json()["faces"]) >= 2  # the faces' models are checked too
        op = spec["paths"][documented][method]
        schema = op["responses"][str(resp.status_code)]["content"]["application/json"]["schema"]
        name = re.sub(r"^#/components/schemas/", "", schema.get("$ref", ""))
        assert name, f"{method.upper()} {documented}: untyped answer {schema}"
        body = getattr(schemas, name).model_validate(resp.json())
        assert _extra_keys(body) == [], (documented, _extra_keys(body))
    # one identity's thumbnail is documented as a JPEG
    op = spec["paths"]["/v1/galleries/{gallery}/thumbnails/{ident_id}.jpg"]["get"]
    assert "image/jpeg" in op["responses"]["200"]["content"]
