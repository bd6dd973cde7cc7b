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
    assert set(rows) == {"obama", "biden"} and rows["obama"].find_elements(By.TAG_NAME, "td")[1].text == "2"
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
