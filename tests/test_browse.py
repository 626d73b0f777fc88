"""`piq browse`: the server's API reads members lazily through the tar offset index; the page,
driven in headless Chromium (Debian's chromium + chromium-driver), pages through sets, toggles
the label-map overlay and shows the lighting variants. Its screenshot goes to test-output/browse/."""
from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.browse.server import Release, serve
from pipeline.shards import iter_raw_samples

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
OUTPUT = Path(os.environ.get("PIQ_TEST_OUTPUT", REPO / "test-output")) / "browse"


@pytest.fixture(scope="module")
def server(tiny_release: Path):
    srv = serve(tiny_release)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_api_lists_filters_and_reads_members(tiny_release: Path, server: str) -> None:
    listing = json.loads(_get(f"{server}/api/sets"))
    assert listing["total"] == 3 and len(listing["sets"]) == 3
    assert listing["identities"] == ["pastronaut", "phopper"]
    only = json.loads(_get(f"{server}/api/sets?identity=phopper"))["sets"]
    assert [s["participant_id"] for s in only] == ["phopper"]
    smiling = json.loads(_get(f"{server}/api/sets?expression=neutral"))["sets"]
    assert smiling and all("i00" in s["match"] for s in smiling)
    images = pd.read_parquet(tiny_release / "train" / "sets.parquet").set_index(["set_id", "image"])
    for pose, ok in (("frontal", lambda y, p: abs(y) <= 10 and abs(p) <= 10), ("left", lambda y, p: y < -10),
                     ("right", lambda y, p: y > 10), ("down", lambda y, p: p < -10)):
        found = json.loads(_get(f"{server}/api/sets?pose={pose}"))["sets"]
        want = {k for (k, i), r in images.iterrows() if ok(r["yaw"], r["pitch"])}
        assert {s["key"] for s in found} == want, pose
        assert all(ok(*images.loc[(s["key"], i), ["yaw", "pitch"]]) for s in found for i in s["match"]), pose
    first = listing["sets"][0]
    shard = tiny_release / first["split"] / first["shard"]
    (key, raw), = list(iter_raw_samples(shard))
    assert key == first["key"]
    assert _get(f"{server}/file/train/{key}/i01.r2.jpg") == raw["i01.r2.jpg"]
    detail = json.loads(_get(f"{server}/api/set/train/{key}"))
    assert detail["meta"]["set_id"] == key and "i02.seg.png" in detail["fields"]
    overlay = cv2.imdecode(np.frombuffer(_get(f"{server}/overlay/train/{key}/i01.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    labels = cv2.imdecode(np.frombuffer(raw["i01.seg.png"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (*labels.shape, 4) and np.array_equal(overlay[..., 3] > 0, labels > 0), "background is see-through"


def test_release_reads_a_shard_only_when_asked(tiny_release: Path) -> None:
    release = Release(tiny_release / "train")
    assert len(release.sets) == 3 and not release._offsets
    s = release.sets[1]
    assert json.loads(release.member(s["split"], s["key"], "meta.json"))["set_id"] == s["key"]
    assert list(release._offsets) == [tiny_release / "train" / s["shard"]], "one shard indexed, the others untouched"


def _chrome(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def test_page_in_headless_chromium(server: str, tmp_path: Path) -> None:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium / chromedriver are missing: .ci/run installs them (apt-get install chromium chromium-driver)")
        pytest.skip("chromium and chromedriver not installed (apt-get install -y chromium chromium-driver); CI runs this test")
    pytest.importorskip("selenium", reason="pip install selenium (a dev dependency)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chrome(tmp_path / "profile")
    try:
        driver.get(server + "/")
        wait = WebDriverWait(driver, 30)
        loaded = ("return document.querySelectorAll('#grid img.photo').length > 0 && "
                  "[...document.querySelectorAll('#grid img.photo, #lighting img')].every(i => i.complete && i.naturalWidth > 0)")
        wait.until(lambda d: d.execute_script(loaded))
        sets = json.loads(_get(f"{server}/api/sets"))["sets"]
        title = driver.find_element(By.ID, "set-title")
        assert title.text == sets[0]["key"] and driver.find_element(By.ID, "counter").text == "1 / 3"
        assert len(driver.find_elements(By.CSS_SELECTOR, "#grid .cell")) == 3  # 1 + n_expressive images
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: d.find_element(By.ID, "set-title").text == sets[1]["key"] and d.execute_script(loaded))
        overlays = driver.find_elements(By.CSS_SELECTOR, "#grid img.overlay")
        assert overlays and not any(o.is_displayed() for o in overlays)
        driver.find_element(By.ID, "overlay").click()
        wait.until(lambda d: all(o.is_displayed() for o in d.find_elements(By.CSS_SELECTOR, "#grid img.overlay")))
        assert driver.execute_script("return [...document.querySelectorAll('#grid img.overlay')].every(i => i.naturalWidth > 0)")
        driver.find_elements(By.CSS_SELECTOR, "#grid .cell")[2].click()
        wait.until(lambda d: d.find_element(By.ID, "lighting-of").text == "i02" and d.execute_script(loaded))
        variants = [img.get_attribute("alt") for img in driver.find_elements(By.CSS_SELECTOR, "#lighting img")]
        assert variants == ["r0", "r1", "r2"]  # the original + n_relit (paper: 6 variants)
        meta = json.loads(driver.find_element(By.ID, "meta").text)
        assert meta["image"]["index"] == "i02" and meta["set"]["set_id"] == sets[1]["key"]
        assert driver.find_element(By.ID, "caption").text == meta["image"]["caption"]
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element(By.ID, "f-identity")).select_by_value("phopper")
        driver.find_element(By.ID, "apply").click()
        wait.until(lambda d: d.find_element(By.ID, "counter").text == "1 / 1" and d.execute_script(loaded))
        assert "phopper" in driver.find_element(By.ID, "set-info").text
        OUTPUT.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(OUTPUT / "browse.png"))
        shot = cv2.imread(str(OUTPUT / "browse.png"))
        assert shot is not None and shot.shape[1] >= 1000 and shot.std() > 10
    finally:
        driver.quit()


def test_without_sets_parquet_filters_read_meta_json(tiny_release: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_release / "train", tmp_path / "train")
    (tmp_path / "train" / "sets.parquet").unlink()
    release = Release(tmp_path / "train")
    assert release.identities() == ["pastronaut", "phopper"]
    found = release.find(identity="phopper", expression="neutral")
    assert [f["participant_id"] for f in found] == ["phopper"] and "i00" in found[0]["match"]
    assert release.find(identity="phopper", expression="no such expression") == []
