"""Gallery CRUD and identification through the HTTP service (TestClient, real photos)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from arcface.face import largest_face
from arcface.gallery import Gallery
from arcface.imageio import decode_image


def _ok(resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()


def _code(resp, status: int) -> str:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]["code"]


def test_gallery_lifecycle(client, analyzer, photos, blank_png, make_app):
    y, g = photos["yaoming.jpg"], photos["gdp.jpg"]
    assert _ok(client.post("/v1/galleries/team"), 201) == {
        "name": "team",
        "identities": 0,
        "threshold": pytest.approx(client.get("/v1/config").json()["threshold"]["value"]),
        "contract": None,
    }
    assert _code(client.post("/v1/galleries/team"), 409) == "gallery_exists"
    assert _code(client.post("/v1/galleries/bad%20name!"), 422) == "invalid_gallery_name"
    assert "team" in _ok(client.get("/v1/galleries"))["galleries"]

    # enrol yaoming from two photos: itself and a mirror image (a different crop of the same face)
    mirror = decode_image(y)[:, ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(mirror[:, :, ::-1]))
    assert ok
    info = _ok(
        client.post(
            "/v1/galleries/team/identities",
            data={"name": "Yao Ming", "metadata": json.dumps({"team": "Rockets"})},
            files=[("images", ("y.jpg", y)), ("images", ("y-mirror.png", buf.tobytes()))],
        ),
        201,
    )
    assert info["name"] == "Yao Ming" and info["images"] == 2 and info["metadata"] == {"team": "Rockets"}
    # the 5 people of gdp.jpg, one identity each (crops of the same photo, enrolled by face embedding)
    gdp_faces = analyzer.analyze(decode_image(g))
    assert len(gdp_faces) == 5

    # identify: the enrolled photo comes back as "Yao Ming"; nobody in gdp.jpg matches him
    hit = _ok(client.post("/v1/identify", data={"gallery": "team", "top_k": "3"}, files={"image": ("y.jpg", y)}))
    assert len(hit["faces"]) == 1
    face = hit["faces"][0]
    ref = largest_face(analyzer.analyze(decode_image(y))).embedding
    gal = Gallery(client.gallery_root / "team")
    assert face["identity"] == "Yao Ming"
    assert face["similarity"] == pytest.approx(float(ref @ gal.template("Yao Ming")), abs=1e-5)
    assert len(face["matches"]) == 1 and face["matches"][0]["candidate"] == "Yao Ming"
    miss = _ok(client.post("/v1/identify", data={"gallery": "team"}, files={"image": ("g.jpg", g)}))
    assert len(miss["faces"]) == 5
    assert all(f["identity"] == "unknown" and f["similarity"] < miss["threshold"] for f in miss["faces"])
    assert all(f["matches"][0]["candidate"] == "Yao Ming" for f in miss["faces"])
    # a threshold of -1 accepts everyone
    forced = _ok(client.post("/v1/identify", data={"gallery": "team", "threshold": "-1"}, files={"image": ("g", g)}))
    assert all(f["identity"] == "Yao Ming" for f in forced["faces"])

    # errors
    no_face = client.post("/v1/galleries/team/identities", data={"name": "x"}, files=[("images", ("b.png", blank_png))])
    assert _code(no_face, 422) == "no_face" and no_face.json()["error"]["field"] == "images[0]"
    reserved = client.post("/v1/galleries/team/identities", data={"name": "unknown"}, files=[("images", ("y", y))])
    assert _code(reserved, 422) == "invalid_identity"
    bad_meta = client.post(
        "/v1/galleries/team/identities", data={"name": "z", "metadata": "{"}, files=[("images", ("y", y))]
    )
    assert _code(bad_meta, 422) == "invalid_request" and bad_meta.json()["error"]["field"] == "metadata"
    assert _code(client.post("/v1/identify", data={"gallery": "nope"}, files={"image": ("y", y)}), 404) == (
        "gallery_not_found"
    )
    assert _code(client.post("/v1/identify", data={"gallery": "team", "top_k": "0"}, files={"image": ("y", y)}), 422)
    assert "z" not in gal.names and "x" not in gal.names

    # rename, get, list, delete identity
    client.post("/v1/galleries/team/identities", data={"name": "Other"}, files=[("images", ("g.jpg", g))])
    assert _code(client.patch("/v1/galleries/team/identities/Yao%20Ming", json={"name": "Other"}), 409) == (
        "identity_exists"
    )
    renamed = _ok(client.patch("/v1/galleries/team/identities/Yao%20Ming", json={"name": "Yao"}))
    assert renamed["name"] == "Yao" and renamed["images"] == 2
    assert _ok(client.get("/v1/galleries/team/identities/Yao"))["metadata"] == {"team": "Rockets"}
    assert _code(client.get("/v1/galleries/team/identities/Yao%20Ming"), 404) == "identity_not_found"
    hit = _ok(client.post("/v1/identify", data={"gallery": "team"}, files={"image": ("y.jpg", y)}))
    assert hit["faces"][0]["identity"] == "Yao"
    names = [i["name"] for i in _ok(client.get("/v1/galleries/team/identities"))["identities"]]
    assert names == ["Other", "Yao"]
    assert _ok(client.delete("/v1/galleries/team/identities/Other")) == {"gallery": "team", "deleted": "Other"}
    assert _code(client.delete("/v1/galleries/team/identities/Other"), 404) == "identity_not_found"

    # persisted: a new service on the same folder sees the same gallery
    with TestClient(make_app(gallery_root=client.gallery_root)) as c2:
        ids = _ok(c2.get("/v1/galleries/team/identities"))["identities"]
        assert [(i["name"], i["images"]) for i in ids] == [("Yao", 2)]
        again = _ok(c2.post("/v1/identify", data={"gallery": "team"}, files={"image": ("y.jpg", y)}))
        assert again["faces"][0]["identity"] == "Yao"

    # delete the gallery: files gone, 404 afterwards
    assert _ok(client.delete("/v1/galleries/team")) == {"deleted": "team"}
    assert not (client.gallery_root / "team").exists()
    assert _code(client.get("/v1/galleries/team"), 404) == "gallery_not_found"
    assert _code(client.delete("/v1/galleries/team"), 404) == "gallery_not_found"


def test_gallery_of_another_model_is_refused(client, photos):
    from arcface.gallery import EmbeddingContract

    other = EmbeddingContract(dim=512, model_sha256="0" * 64, model_name="another model")
    with Gallery(client.gallery_root / "foreign", contract=other) as g:
        g.enroll("someone", np.eye(512, dtype=np.float32)[0], contract=other)
    resp = client.post("/v1/identify", data={"gallery": "foreign"}, files={"image": ("y.jpg", photos["yaoming.jpg"])})
    assert _code(resp, 409) == "contract_mismatch"
    assert "another model" in resp.json()["error"]["message"]


def test_in_memory_galleries(make_app, photos):
    with TestClient(make_app()) as c:
        _ok(c.post("/v1/galleries/tmp"), 201)
        files = [("images", ("y", photos["yaoming.jpg"]))]
        _ok(c.post("/v1/galleries/tmp/identities", data={"name": "a"}, files=files), 201)
        assert _ok(c.get("/v1/galleries"))["persistent"] is False
        assert _ok(c.get("/v1/galleries/tmp"))["identities"] == 1
        # identity names may hold a slash: the last path segment is not the whole name
        _ok(c.post("/v1/galleries/tmp/identities", data={"name": "AC/DC"}, files=files), 201)
        assert _ok(c.get("/v1/galleries/tmp/identities/AC/DC"))["name"] == "AC/DC"
        assert _ok(c.patch("/v1/galleries/tmp/identities/AC/DC", json={"name": "AC-DC"}))["name"] == "AC-DC"
        assert _ok(c.delete("/v1/galleries/tmp/identities/AC-DC"))["deleted"] == "AC-DC"
        assert [i["name"] for i in _ok(c.get("/v1/galleries/tmp/identities"))["identities"]] == ["a"]


@pytest.mark.parametrize("persistent", [True, False])
def test_thumbnails_follow_the_identity(make_app, analyzer, shared_data, tmp_path, persistent):
    """Enrolment keeps the first photo's aligned face as a 112x112 JPEG keyed by the identity's id: it is that
    person's face (its embedding matches the enrolled one), survives a rename, is replaced by ``replace``, and
    goes with the identity; ``thumbnails=False`` keeps none."""
    people = shared_data / "face_recognition_by_identity"
    obama, obama2, biden = (
        people / "obama" / "obama.jpg",
        people / "obama" / "obama2.jpg",
        people / "biden" / "biden.jpg",
    )
    root = tmp_path / "g" if persistent else None
    with TestClient(make_app(gallery_root=root)) as c:
        _ok(c.post("/v1/galleries/t"), 201)
        info = _ok(
            c.post("/v1/galleries/t/identities", data={"name": "obama"}, files=[("images", ("o", obama.read_bytes()))]),
            201,
        )
        assert info["thumbnail"] is True
        url = f"/v1/galleries/t/thumbnails/{info['id']}.jpg"
        resp = c.get(url)
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
        thumb = decode_image(resp.content, "thumbnail")
        assert thumb.shape == (112, 112, 3)
        emb = analyzer.embedder.embed(thumb[None])[0]
        enrolled = largest_face(analyzer.analyze(obama)).embedding
        assert float(emb @ enrolled) > 0.95  # the stored crop is the enrolled face (JPEG costs a little)
        if persistent:
            assert (root / "t" / "thumbnails" / f"{info['id']}.jpg").is_file()
        # extending keeps the first thumbnail; a rename keeps it (same id)
        _ok(
            c.post(
                "/v1/galleries/t/identities", data={"name": "obama"}, files=[("images", ("o2", obama2.read_bytes()))]
            ),
            201,
        )
        assert c.get(url).content == resp.content
        renamed = _ok(c.patch("/v1/galleries/t/identities/obama", json={"name": "barack"}))
        assert renamed["id"] == info["id"] and renamed["thumbnail"] is True
        assert c.get(url).content == resp.content
        # replace: a new thumbnail, from the new photo
        rep = _ok(
            c.post(
                "/v1/galleries/t/identities",
                data={"name": "barack", "replace": "true"},
                files=[("images", ("o2", obama2.read_bytes()))],
            ),
            201,
        )
        assert c.get(f"/v1/galleries/t/thumbnails/{rep['id']}.jpg").content != resp.content
        # removing the identity removes its thumbnail
        _ok(c.delete("/v1/galleries/t/identities/barack"))
        assert _code(c.get(f"/v1/galleries/t/thumbnails/{rep['id']}.jpg"), 404) == "thumbnail_not_found"
        if persistent:
            assert list((root / "t" / "thumbnails").iterdir()) == []
        assert _code(c.get("/v1/galleries/t/thumbnails/x.jpg"), 422) == "invalid_request"
        assert _code(c.get("/v1/galleries/nope/thumbnails/0.jpg"), 404) == "gallery_not_found"
    with TestClient(make_app(gallery_root=root and tmp_path / "off", thumbnails=False)) as c:
        _ok(c.post("/v1/galleries/t"), 201)
        info = _ok(
            c.post("/v1/galleries/t/identities", data={"name": "joe"}, files=[("images", ("b", biden.read_bytes()))]),
            201,
        )
        assert info["thumbnail"] is False and _ok(c.get("/v1/config"))["galleries"]["thumbnails"] is False
        assert c.get(f"/v1/galleries/t/thumbnails/{info['id']}.jpg").status_code == 404
        if persistent:
            assert not (tmp_path / "off" / "t" / "thumbnails").exists()


def test_enrolment_names_photos_whose_face_only_a_last_resort_stage_found(client, shared_data) -> None:
    """A photo so blurred that only the low-threshold stage finds its face is enrolled, and the answer names it
    (``found_by_fallback``); a sharp photo enrolled beside it is not listed."""
    from arcface.imageio import load_image

    sharp = load_image(shared_data / "face_recognition_by_identity" / "obama" / "obama.jpg")
    blurred = cv2.GaussianBlur(sharp, (0, 0), 40)
    files = []
    for name, img in (("sharp.jpg", sharp), ("blurred.jpg", blurred)):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]))
        assert ok
        files.append(("images", (name, buf.tobytes())))
    _ok(client.post("/v1/galleries/fallbacks"), 201)
    info = _ok(client.post("/v1/galleries/fallbacks/identities", data={"name": "obama"}, files=files), 201)
    assert info["images"] == 2
    assert [(f["photo"], f["stage"]) for f in info["found_by_fallback"]] == [
        ("images[1] (blurred.jpg)", "low_threshold")
    ]
