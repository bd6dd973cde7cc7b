"""The web page in headless Chromium (selenium): pick two photos, read the similarity, compare with the API.

Skipped when selenium, chromium or chromedriver is missing. CI installs them with
``apt-get install -y chromium chromium-driver`` and ``pip install selenium``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

SCREENSHOT_DIR = os.environ.get("ARCFACE_SCREENSHOT_DIR")


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chrome = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if chrome is None or driver_path is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="arcface-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1200,1000",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_compares_two_photos(browser, live_server, vectron_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    a, b = vectron_dir / "gdp.jpg", vectron_dir / "yaoming.jpg"
    browser.get(live_server.url + "/")
    assert "Compare two faces" in browser.title or "compare two faces" in browser.title
    browser.find_element(By.ID, "file-a").send_keys(str(a))
    browser.find_element(By.ID, "file-b").send_keys(str(b))
    sim_el = browser.find_element(By.ID, "similarity")
    WebDriverWait(browser, 60).until(lambda d: sim_el.get_attribute("data-similarity"))
    shown = float(sim_el.get_attribute("data-similarity"))

    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        files = {"image_a": (a.name, a.read_bytes()), "image_b": (b.name, b.read_bytes())}
        api = c.post("/v1/verify", files=files).json()
    assert shown == pytest.approx(api["similarity"], abs=1e-6)
    assert sim_el.text == f"{api['similarity']:.4f}"
    verdict = browser.find_element(By.ID, "verdict").text
    assert verdict == ("Same person" if api["same"] else "Different people")
    assert browser.find_element(By.ID, "threshold").text == f"{api['threshold']:.4f}"
    assert browser.find_element(By.ID, "faces-a").text.startswith(f"{api['faces']['a']} faces")

    # the canvases hold the photos at the server's reported aspect ratio, with boxes drawn in green
    for side, key in (("a", "image_a"), ("b", "image_b")):
        w, h = browser.execute_script(
            f"const c = document.getElementById('canvas-{side}'); return [c.width, c.height];"
        )
        info = api["images"][key]
        assert w > 0 and abs(w / h - info["width"] / info["height"]) < 0.02
        face = info["faces"][info["used"]]
        x1, y1, x2, y2 = face["bbox"]
        scale = w / info["width"]
        # a pixel on the left edge of the used face's box is the box colour (green)
        r, g, b_ = browser.execute_script(
            f"const c = document.getElementById('canvas-{side}');"
            f"return Array.from(c.getContext('2d').getImageData({round(x1 * scale)}, "
            f"{round((y1 + y2) / 2 * scale)}, 1, 1).data.slice(0, 3));"
        )
        assert g > 120 and r < 80 and b_ < 100, (side, r, g, b_)

    shot = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    shot.mkdir(parents=True, exist_ok=True)
    png = shot / "serve_page.png"
    assert browser.save_screenshot(str(png))
    assert png.stat().st_size > 10_000


def test_page_shows_errors(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bad = tmp_path / "notes.txt"
    bad.write_text("not a photo")
    browser.get(live_server.url + "/")
    browser.find_element(By.ID, "file-a").send_keys(str(bad))
    browser.find_element(By.ID, "file-b").send_keys(str(bad))
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda d: "Error" in status.text)
    assert "422" in status.text and "image_a" in status.text
    assert browser.find_element(By.ID, "similarity").text == "–"


def test_docs_render_offline_from_local_assets(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    html = httpx.get(live_server.url + "/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in html and "cdn" not in html.lower()  # nothing from the internet
    browser.get(live_server.url + "/docs")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/verify", "/v1/identify", "/v1/galleries/{gallery}/identities"} <= paths
    shot = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    shot.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot / "serve_docs.png"))


def test_galleries_and_identify_pages(browser, live_server, shared_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    people = shared_data / "face_recognition_by_identity"
    shot = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    shot.mkdir(parents=True, exist_ok=True)
    browser.get(live_server.url + "/galleries")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda d: "Loading" not in status.text)
    browser.find_element(By.ID, "new-gallery").send_keys("web-team")
    browser.find_element(By.ID, "create").click()
    WebDriverWait(browser, 30).until(lambda d: "Created web-team" in status.text)

    def enrol(name: str, photos: list[Path]) -> None:
        browser.find_element(By.ID, "person").send_keys(name)
        browser.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in photos))
        browser.find_element(By.ID, "enroll").click()
        WebDriverWait(browser, 60).until(lambda d: f"Enrolled {name}" in status.text or "Error" in status.text)
        assert f"Enrolled {name} ({len(photos)} photos)" in status.text, status.text

    enrol("obama", [people / "obama" / "obama.jpg", people / "obama" / "obama2.jpg"])
    enrol("biden", [people / "biden" / "biden.jpg", people / "biden" / "biden2.jpg"])
    rows = {r.get_attribute("data-name"): r for r in browser.find_elements(By.CSS_SELECTOR, "#people tr")}
    assert set(rows) == {"obama", "biden"} and rows["obama"].find_elements(By.TAG_NAME, "td")[2].text == "2"
    assert browser.save_screenshot(str(shot / "serve_galleries.png"))
    with httpx.Client(base_url=live_server.url) as c:  # the page's changes are the service's state
        names = {i["name"] for i in c.get("/v1/galleries/web-team/identities").json()["identities"]}
    assert names == {"obama", "biden"}

    # identify a group photo: every face labelled, both people found
    browser.get(live_server.url + "/identify?gallery=web-team")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "gallery").get_attribute("value") == "web-team")
    browser.find_element(By.ID, "file").send_keys(str(shared_data / "multi_face" / "obama_and_biden.jpg"))
    istatus = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda d: "identified" in istatus.text or "Error" in istatus.text)
    found = [li.get_attribute("data-identity") for li in browser.find_elements(By.CSS_SELECTOR, "#answers li")]
    assert {"obama", "biden"} <= set(found), (found, istatus.text)
    assert browser.save_screenshot(str(shot / "serve_identify.png"))

    # remove one person on the galleries page
    browser.get(live_server.url + "/galleries?gallery=web-team")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#people tr")) == 2)
    browser.find_element(By.CSS_SELECTOR, "#people tr[data-name='biden'] button.remove").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda d: "Removed biden" in status.text)
    assert [r.get_attribute("data-name") for r in browser.find_elements(By.CSS_SELECTOR, "#people tr")] == ["obama"]


def test_compare_a_chosen_face_of_a_group_photo(browser, live_server, shared_data):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    group = shared_data / "multi_face" / "obama_and_biden.jpg"
    single = shared_data / "face_recognition_by_identity" / "biden" / "biden.jpg"
    browser.get(live_server.url + "/")
    browser.find_element(By.ID, "file-a").send_keys(str(group))
    browser.find_element(By.ID, "file-b").send_keys(str(single))
    sim_el = browser.find_element(By.ID, "similarity")
    WebDriverWait(browser, 60).until(lambda d: sim_el.get_attribute("data-similarity"))
    first = sim_el.get_attribute("data-similarity")
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        files = {"image_a": (group.name, group.read_bytes()), "image_b": (single.name, single.read_bytes())}
        api = c.post("/v1/verify", files=files).json()
        info = api["images"]["image_a"]
        others = [i for i in range(len(info["faces"])) if i != info["used"]]
        target = max(others, key=lambda i: info["faces"][i]["bbox"][2] - info["faces"][i]["bbox"][0])
        chosen = c.post("/v1/verify", files=files, data={"face_a": str(target)}).json()
        bad = c.post("/v1/verify", files=files, data={"face_a": "99"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "face_a"
    assert float(first) == pytest.approx(api["similarity"], abs=1e-6)
    # click the centre of the other face on the canvas: the page compares that face instead
    canvas = browser.find_element(By.ID, "canvas-a")
    w, h = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", canvas)
    x1, y1, x2, y2 = info["faces"][target]["bbox"]
    dx = (x1 + x2) / 2 * w / info["width"] - w / 2
    dy = (y1 + y2) / 2 * h / info["height"] - h / 2
    ActionChains(browser).move_to_element_with_offset(canvas, int(dx), int(dy)).click().perform()
    WebDriverWait(browser, 60).until(lambda d: sim_el.get_attribute("data-similarity") not in (None, "", first))
    assert float(sim_el.get_attribute("data-similarity")) == pytest.approx(chosen["similarity"], abs=1e-6)
    assert chosen["images"]["image_a"]["used"] == target
    assert f"face {target + 1}, in green, was compared" in browser.find_element(By.ID, "faces-a").text


def _shot_dir(tmp_path: Path) -> Path:
    shot = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    shot.mkdir(parents=True, exist_ok=True)
    return shot


def test_galleries_page_thumbnails_rename_and_folder_upload(browser, live_server, shared_data, tmp_path):
    """Enrol a folder of sub-folders (one person each, photos outside a sub-folder skipped), see each person's
    face thumbnail, rename a person in place."""
    import shutil as sh

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    people = shared_data / "face_recognition_by_identity"
    folder = tmp_path / "staff"  # a user's folder: staff/<person>/<photos>, plus a stray photo at the top
    for person, names in (("obama", ["obama.jpg", "obama2.jpg"]), ("biden", ["biden.jpg", "biden2.jpg"])):
        (folder / person).mkdir(parents=True)
        for n in names:
            sh.copyfile(people / person / n, folder / person / n)
    sh.copyfile(people / "obama" / "obama.jpg", folder / "stray.jpg")
    (folder / "biden" / "notes.txt").write_text("not a photo")

    httpx.post(live_server.url + "/v1/galleries/web-folder").raise_for_status()
    browser.get(live_server.url + "/galleries?gallery=web-folder")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda d: "people in web-folder" in status.text)
    browser.find_element(By.ID, "folder").send_keys(str(folder))
    browser.find_element(By.ID, "enroll-folder").click()
    WebDriverWait(browser, 90).until(lambda d: "Enrolled 2 people" in status.text or "Error" in status.text)
    assert "Skipped 1 photo(s) outside a person's sub-folder" in status.text, status.text
    with httpx.Client(base_url=live_server.url) as c:
        got = {i["name"]: i for i in c.get("/v1/galleries/web-folder/identities").json()["identities"]}
    assert {n: i["images"] for n, i in got.items()} == {"obama": 2, "biden": 2}

    # every person's row shows the thumbnail kept at enrolment (decoded by the browser: 112x112)
    def thumbs_loaded(d):
        sizes = d.execute_script(
            "return Array.from(document.querySelectorAll('#people img.thumb')).map(i => i.naturalWidth);"
        )
        return sizes if len(sizes) == 2 and all(s == 112 for s in sizes) else False

    assert WebDriverWait(browser, 30).until(thumbs_loaded)
    assert browser.save_screenshot(str(_shot_dir(tmp_path) / "serve_galleries_thumbnails.png"))

    # rename in place: the Rename button turns the name into a field; Enter saves
    browser.find_element(By.CSS_SELECTOR, "#people tr[data-name='biden'] button.rename").click()
    field = browser.find_element(By.CSS_SELECTOR, "#people tr[data-name='biden'] input.rename-input")
    field.clear()
    field.send_keys("joe biden", Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: "Renamed biden to joe biden" in status.text or "Error" in status.text)
    rows = [r.get_attribute("data-name") for r in browser.find_elements(By.CSS_SELECTOR, "#people tr")]
    assert sorted(rows) == ["joe biden", "obama"], (rows, status.text)
    with httpx.Client(base_url=live_server.url) as c:
        joe = c.get("/v1/galleries/web-folder/identities/joe biden").json()
    assert joe["id"] == got["biden"]["id"] and joe["thumbnail"] is True  # same identity, thumbnail kept
    # photos dropped on the enrolment panel (a real drop event carrying files) enrol a person
    import base64

    kit = next(p for p in sorted((people / "kit_harington").iterdir()) if p.suffix.lower() in (".jpg", ".jpeg"))
    browser.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], arguments[1], { type: "image/jpeg" }));
        const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true });
        document.getElementById("enrol-panel").dispatchEvent(drop);""",
        base64.b64encode(kit.read_bytes()).decode(),
        kit.name,
    )
    WebDriverWait(browser, 10).until(lambda d: "1 photo(s) ready" in status.text)
    browser.find_element(By.ID, "person").send_keys("kit")
    browser.find_element(By.ID, "enroll").click()
    WebDriverWait(browser, 60).until(lambda d: "Enrolled kit (1 photos)" in status.text or "Error" in status.text)
    assert "Enrolled kit (1 photos)" in status.text, status.text

    # a name taken by someone else is refused with the service's message
    browser.find_element(By.CSS_SELECTOR, "#people tr[data-name='obama'] button.rename").click()
    field = browser.find_element(By.CSS_SELECTOR, "#people tr[data-name='obama'] input.rename-input")
    field.clear()
    field.send_keys("joe biden", Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: "Error" in status.text)
    assert "409" in status.text and "already exists" in status.text


def test_video_page_tracks_an_uploaded_clip(browser, live_server, analyzer, shared_data, tmp_path):
    import sys

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    pytest.importorskip("scipy")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video_clips import make_clip

    clip = make_clip(analyzer, shared_data, tmp_path / "clip")
    people = shared_data / "face_recognition_by_identity"
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        c.post("/v1/galleries/web-video").raise_for_status()
        for name in ("obama", "biden"):
            files = {"images": (f"{name}.jpg", (people / name / f"{name}.jpg").read_bytes())}
            c.post("/v1/galleries/web-video/identities", data={"name": name}, files=files).raise_for_status()
    browser.get(live_server.url + "/video")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "gallery").get_attribute("data-ready"))
    Select(browser.find_element(By.ID, "gallery")).select_by_value("web-video")
    browser.find_element(By.ID, "detect-every").clear()
    browser.find_element(By.ID, "detect-every").send_keys("3")
    browser.find_element(By.ID, "clip").send_keys(str(clip["path"]))
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 120).until(lambda d: "tracks" in status.text or "Error" in status.text)
    assert status.text.startswith("60 frames"), status.text
    shown = [r.get_attribute("data-identity") for r in browser.find_elements(By.CSS_SELECTOR, "#events tr")]
    assert {"obama", "biden"} <= set(shown), shown
    assert browser.save_screenshot(str(_shot_dir(tmp_path) / "serve_video.png"))


def test_settings_page_shows_the_threshold_and_overrides_it_for_this_browser(
    browser, live_server, vectron_dir, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = httpx.get(live_server.url + "/v1/config").json()
    browser.get(live_server.url + "/settings")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda d: status.text == "Ready.")

    def shown(key: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, f"#threshold-info dd[data-key='{key}']").text

    assert shown("value") == f"{config['threshold']['value']:.4f} (cosine)"
    assert shown("provenance") == config["threshold"]["provenance"]
    assert shown("override") == "uses the server's"
    roles = config["engine"]["roles"]  # each model's engine and precision (the detector stays f32)
    info = {dd.get_attribute("data-key"): dd.text for dd in browser.find_elements(By.CSS_SELECTOR, "#server-info dd")}
    assert info["detector"].endswith(" on " + roles["detector"]) and roles["detector"].endswith("/f32")
    assert info["recognizer"].endswith(" on " + roles["recognizer"])
    assert browser.save_screenshot(str(_shot_dir(tmp_path) / "serve_settings.png"))
    # an out-of-range value is refused; a valid one is used by the Compare page
    browser.find_element(By.ID, "threshold").send_keys("1.5")
    browser.find_element(By.ID, "save-threshold").click()
    WebDriverWait(browser, 10).until(lambda d: "between -1 and 1" in status.text)
    browser.find_element(By.ID, "threshold").clear()
    browser.find_element(By.ID, "threshold").send_keys("0.05")
    browser.find_element(By.ID, "save-threshold").click()
    WebDriverWait(browser, 10).until(lambda d: "decides at 0.0500" in status.text)
    assert shown("override") == "0.0500 (override)"
    try:
        browser.get(live_server.url + "/")
        browser.find_element(By.ID, "file-a").send_keys(str(vectron_dir / "gdp.jpg"))
        browser.find_element(By.ID, "file-b").send_keys(str(vectron_dir / "yaoming.jpg"))
        sim = browser.find_element(By.ID, "similarity")
        WebDriverWait(browser, 60).until(lambda d: sim.get_attribute("data-similarity"))
        assert browser.find_element(By.ID, "threshold").text == "0.0500"
        same = float(sim.get_attribute("data-similarity")) >= 0.05
        assert browser.find_element(By.ID, "verdict").text == ("Same person" if same else "Different people")
    finally:
        browser.get(live_server.url + "/settings")
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").text == "Ready.")
        browser.find_element(By.ID, "reset-threshold").click()
        WebDriverWait(browser, 10).until(
            lambda d: "uses the server's threshold" in d.find_element(By.ID, "status").text
        )


def test_every_page_links_every_other(browser, live_server):
    from selenium.webdriver.common.by import By

    pages = {
        "Compare": "/",
        "Identify": "/identify",
        "Galleries": "/galleries",
        "Video": "/video",
        "Settings": "/settings",
    }
    for label, path in pages.items():
        browser.get(live_server.url + path)
        links = {a.text: a for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")}
        assert list(links) == [*pages, "API"], (path, list(links))
        assert links[label].get_attribute("aria-current") == "page"
        assert httpx.get(live_server.url + path).status_code == 200


def test_video_page_watches_a_stream_monitor(browser, make_app, wheel_images, tmp_path):
    """Start a monitor on a loopback MJPEG camera from the page, see its live preview (the page reads the MJPEG
    parts through fetch, with the API key), then stop it."""
    import sys

    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pytest.importorskip("uvicorn")
    pytest.importorskip("scipy")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from arcface.serve.runner import serve_in_thread
    from video_clips import MjpegCamera

    cam = MjpegCamera(wheel_images["yaoming.jpg"])
    app = make_app(gallery_root=tmp_path / "g", api_key="page-key", monitor_sources=("http://127.0.0.1:",))
    server = serve_in_thread(app)
    try:
        browser.get(server.url + "/video")
        browser.execute_script("localStorage.setItem('arcface-api-key', 'page-key');")
        browser.get(server.url + "/video")
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "gallery").get_attribute("data-ready"))
        browser.find_element(By.ID, "source").send_keys(cam.url)
        browser.find_element(By.ID, "start").click()
        status = browser.find_element(By.ID, "status")
        WebDriverWait(browser, 30).until(lambda d: "Monitoring" in status.text or "Error" in status.text)
        assert "Monitoring " + cam.url in status.text, status.text
        # the preview shows the camera's frames (decoded by the browser at the camera's size)
        h, w = wheel_images["yaoming.jpg"].shape[:2]
        WebDriverWait(browser, 60).until(
            lambda d: d.execute_script("return document.getElementById('preview').naturalWidth;") == w
        )
        assert browser.execute_script("return document.getElementById('preview').naturalHeight;") == h
        # the table is redrawn every 2 s: read and click through fresh lookups
        WebDriverWait(browser, 30).until(lambda d: "running" in d.find_element(By.ID, "monitors").text)

        def click_stop(d) -> bool:
            try:
                d.find_element(By.CSS_SELECTOR, "#monitors tr[data-monitor] button.danger").click()
                return True
            except StaleElementReferenceException:
                return False

        WebDriverWait(browser, 10).until(click_stop)
        WebDriverWait(browser, 30).until(lambda d: "Stopped monitor" in status.text)
        assert httpx.get(server.url + "/v1/monitors", headers={"X-API-Key": "page-key"}).json()["monitors"] == []
    finally:
        server.stop()
        cam.close()


def test_every_page_has_one_api_key_box_whose_key_the_others_send(browser, make_app, tmp_path):
    """The key typed on one page (Galleries) is kept in the browser and sent by the others; each page has exactly
    one key field (Compare and Settings their own, the rest the box common.js adds); without it the server says
    401 on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pytest.importorskip("uvicorn")
    from arcface.serve.runner import serve_in_thread

    app = make_app(gallery_root=tmp_path / "g", api_key="box-key")
    server = serve_in_thread(app)
    try:
        headers = {"X-API-Key": "box-key"}
        assert httpx.post(server.url + "/v1/galleries/staff", headers=headers).status_code in (200, 201)
        browser.get(server.url + "/galleries")
        browser.execute_script("localStorage.removeItem('arcface-api-key');")
        browser.get(server.url + "/identify")
        status = browser.find_element(By.ID, "status")
        WebDriverWait(browser, 20).until(lambda d: "401" in status.text)  # the gallery list needs the key
        assert browser.find_element(By.ID, "api-key").is_displayed()  # and the box opened to ask for it
        for path in ("/", "/identify", "/galleries", "/video", "/settings"):
            browser.get(server.url + path)
            assert len(browser.find_elements(By.ID, "api-key")) == 1, path
        browser.get(server.url + "/galleries")
        field = browser.find_element(By.ID, "api-key")
        WebDriverWait(browser, 20).until(lambda d: field.is_displayed())  # opened by the page's own 401
        field.send_keys("box-key")
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'));", field)
        assert browser.execute_script("return localStorage.getItem('arcface-api-key');") == "box-key"
        browser.get(server.url + "/identify")  # another page sends the stored key: the gallery list loads
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "gallery").get_attribute("data-ready"))
        names = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#gallery option")]
        assert "staff" in names, names
        assert browser.find_element(By.ID, "api-key").get_attribute("value") == "box-key"
    finally:
        browser.execute_script("localStorage.removeItem('arcface-api-key');")
        server.stop()


def test_galleries_page_names_a_photo_only_a_last_resort_stage_found(browser, live_server, shared_data, tmp_path):
    """Enrolling a photo so blurred that only the low-threshold stage finds its face: the page names it."""
    import cv2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sharp = cv2.imread(str(shared_data / "face_recognition_by_identity" / "obama" / "obama.jpg"))
    blurred = tmp_path / "blurred.jpg"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(sharp, (0, 0), 40))
    assert httpx.post(live_server.url + "/v1/galleries/web-check").status_code == 201
    browser.get(live_server.url + "/galleries?gallery=web-check")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "gallery").get_attribute("data-ready"))
    browser.execute_script("document.getElementById('gallery').value = 'web-check';")
    browser.find_element(By.ID, "person").send_keys("obama")
    browser.find_element(By.ID, "photos").send_keys(str(blurred))
    browser.find_element(By.ID, "enroll").click()
    WebDriverWait(browser, 60).until(lambda d: "Enrolled obama" in status.text or "Error" in status.text)
    assert "Check blurred.jpg: only a last-resort stage found the face." in status.text, status.text
