"""`piq app` end to end in headless Chromium (Debian's chromium + chromium-driver, as the shard
browser's test): open two photos of the demo burst, see their faces numbered, click the
blinking astronaut, pick her face from the other photo, then from an uploaded reference; the
result and the before / after slider appear, the download carries the watermark and the
provenance (`piq verify`'s reader), the side column holds its layout; screenshot in
test-output/app/. Then the API's refusals: another person's face, a broken upload."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest

from facereplace.app.server import serve
from facereplace.app.session import Session
from facereplace.provenance import verify
from pipeline.browse.http import LocalServer
from pipeline.config.params import load_params
from tests.fixtures.chrome import chrome, layout_breaks, output_dir, require_chromium

REPO = Path(__file__).resolve().parents[1]
BURST = REPO / "samples" / "burst"

pytestmark = pytest.mark.slow  # face detection on three photos: ~30 s on one core


@pytest.fixture
def app():
    """A session and server of the test's own: photos another test uploaded would be candidates
    here (a random test order made the page test wait for one candidate among two)."""
    session = Session(load_params(REPO / "params.yaml"))
    srv = serve(session).start()
    yield srv, session
    srv.stop()
    session.close()


def _post(srv: LocalServer, path: str, body: bytes, kind: str = "application/octet-stream") -> tuple[int, dict]:
    """POST as the page does: its token, its own Origin, a content type no form can send."""
    req = urllib.request.Request(srv.base + path, data=body, method="POST",
                                 headers={"Content-Type": kind, "X-PIQ-Token": srv.token, "Origin": srv.base})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_page_replaces_a_face_and_downloads_it_marked(app, tmp_path: Path) -> None:
    require_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    srv, session = app
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chrome(tmp_path / "profile", size=(1400, 1000), downloads=downloads)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        driver.get(srv.url)  # the URL printed at start: its token becomes the page's cookie
        wait = WebDriverWait(driver, 300)
        driver.find_element(By.ID, "open").send_keys(f"{BURST / 'shot_0.jpg'}\n{BURST / 'shot_2.jpg'}")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#strip .thumb")) == 2
                   and len(d.find_elements(By.CSS_SELECTOR, "#stage .face")) == 2)
        numbers = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#stage .face span")]
        assert numbers == ["0", "1"], "faces numbered left to right"
        driver.find_element(By.CSS_SELECTOR, "#stage .face[data-index='0']").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#candidates .cand")) == 1)
        cand = driver.find_element(By.CSS_SELECTOR, "#candidates .cand")
        ids = [t.get_attribute("data-id") for t in driver.find_elements(By.CSS_SELECTOR, "#strip .thumb")]
        assert cand.get_attribute("data-photo") == ids[1] and cand.get_attribute("data-face") == "0", "the same person elsewhere"
        # an uploaded reference of her joins the candidates
        driver.find_element(By.ID, "reference").send_keys(str(BURST / "shot_1.jpg"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#candidates .cand")) == 2)
        ref_id = driver.find_elements(By.CSS_SELECTOR, "#strip .thumb")[-1].get_attribute("data-id")
        ref = [c for c in driver.find_elements(By.CSS_SELECTOR, "#candidates .cand") if c.get_attribute("data-photo") == ref_id]
        assert ref and "(reference)" in ref[0].text and "score" in ref[0].text
        Select(driver.find_element(By.ID, "region")).select_by_value("eyes")  # a blink: the eyes only
        ref[0].click()
        loaded = "const a = document.getElementById('after'); return !a.hidden && a.complete && a.naturalWidth > 0"
        wait.until(lambda d: d.execute_script(loaded))
        assert driver.find_element(By.ID, "slider").is_displayed()
        assert "replaced" in driver.find_element(By.CSS_SELECTOR, "#stage .face[data-index='0']").get_attribute("class")
        driver.execute_script("const s = document.getElementById('slider'); s.value = 30; s.dispatchEvent(new Event('input'))")
        assert "30%" in driver.find_element(By.ID, "after").value_of_css_property("clip-path")
        assert layout_breaks(driver, "aside *", "aside") == [] and layout_breaks(driver, "main > *", "main") == []
        shot_path = output_dir("app") / "app.png"
        assert driver.save_screenshot(str(shot_path))
        shot = cv2.imread(str(shot_path))
        assert shot is not None and shot.shape[1] >= 1000 and shot.std() > 10
        driver.find_element(By.ID, "download").click()
        target = downloads / "shot_0_piq.jpg"
        deadline = time.time() + 60
        while not target.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert target.exists(), f"downloaded: {list(downloads.iterdir())}"
    finally:
        driver.quit()
    v = verify(target)
    assert v.watermarked and v.metadata["edit"]["tool"] == "piq app"
    (face,) = v.metadata["edit"]["faces"]
    assert face["face"] == 0 and face["reference"] == "shot_1.jpg" and face["region"] == "eyes"
    assert set(v.metadata["edit"]["inputs"]) == {"shot_0.jpg", "shot_1.jpg"}


def test_api_refuses_another_person_and_a_broken_upload(app) -> None:
    srv, session = app
    status, again = _post(srv, "/api/photos?name=shot_0.jpg", (BURST / "shot_0.jpg").read_bytes())  # found once
    assert status == 200 and len(again["faces"]) == 2
    status, other = _post(srv, "/api/photos?name=shot_2.jpg", (BURST / "shot_2.jpg").read_bytes())  # its own upload,
    assert status == 200 and len(other["faces"]) == 2  # not a photo another test left in the session
    status, err = _post(srv, "/api/replace", json.dumps({"photo": again["id"], "face": 0, "source": other["id"],
                                                          "source_face": 1}).encode(), "application/json")
    assert status == 400 and err["error"].startswith("identity_mismatch") and "not the same person" in err["error"]
    status, err = _post(srv, "/api/photos?name=broken.jpg", (BURST / "shot_0.jpg").read_bytes()[:3000])
    assert status == 400 and "broken.jpg" in err["error"] and str(session.folder) not in err["error"]
    status, err = _post(srv, "/api/replace", b"{}", "application/json")
    assert status == 400 and err["error"] == "photo: expected a string"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(urllib.request.Request(f"{srv.base}/api/photos/p99/original.jpg",
                                                      headers={"X-PIQ-Token": srv.token}), timeout=30)
    assert missing.value.code == 400 and b"unknown_photo" in missing.value.read()
