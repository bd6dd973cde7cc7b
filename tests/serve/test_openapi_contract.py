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
