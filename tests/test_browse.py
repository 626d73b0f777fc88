"""`piq browse`: the server's API reads members lazily through the tar offset index; the page,
driven in headless Chromium (Debian's chromium + chromium-driver), pages through sets, toggles
the label-map overlay and shows the lighting variants. Its screenshot goes to test-output/browse/."""
from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.browse.http import LocalServer
from pipeline.browse.server import Release, serve
from pipeline.release.shards import iter_raw_samples
from tests.fixtures.chrome import chrome, layout_breaks, output_dir, require_chromium


def _serving(root: Path):
    srv = serve(root).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def server(tiny_release: Path):
    yield from _serving(tiny_release)


def _get(server: LocalServer, path: str) -> bytes:
    """GET as a script does: the token in a header."""
    req = urllib.request.Request(server.base + path, headers={"X-PIQ-Token": server.token})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def test_api_lists_filters_and_reads_members(tiny_release: Path, server: LocalServer) -> None:
    listing = json.loads(_get(server, "/api/sets"))
    assert listing["total"] == 3 and len(listing["sets"]) == 3
    assert listing["identities"] == ["pastronaut", "phopper"]
    only = json.loads(_get(server, "/api/sets?identity=phopper"))["sets"]
    assert [s["participant_id"] for s in only] == ["phopper"]
    smiling = json.loads(_get(server, "/api/sets?expression=neutral"))["sets"]
    assert smiling and all("i00" in s["match"] for s in smiling)
    images = pd.read_parquet(tiny_release / "train" / "sets.parquet").set_index(["set_id", "image"])
    for pose, ok in (("frontal", lambda y, p: abs(y) <= 10 and abs(p) <= 10), ("left", lambda y, p: y < -10),
                     ("right", lambda y, p: y > 10), ("down", lambda y, p: p < -10)):
        found = json.loads(_get(server, f"/api/sets?pose={pose}"))["sets"]
        want = {k for (k, i), r in images.iterrows() if ok(r["yaw"], r["pitch"])}
        assert {s["key"] for s in found} == want, pose
        assert all(ok(*images.loc[(s["key"], i), ["yaw", "pitch"]]) for s in found for i in s["match"]), pose
    first = listing["sets"][0]
    shard = tiny_release / first["split"] / first["shard"]
    (key, raw), = list(iter_raw_samples(shard))
    assert key == first["key"]
    assert _get(server, f"/file/train/{key}/i01.r2.jpg") == raw["i01.r2.jpg"]
    detail = json.loads(_get(server, f"/api/set/train/{key}"))
    assert detail["meta"]["set_id"] == key and "i02.seg.png" in detail["fields"]
    overlay = cv2.imdecode(np.frombuffer(_get(server, f"/overlay/train/{key}/i01.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    labels = cv2.imdecode(np.frombuffer(raw["i01.seg.png"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (*labels.shape, 4) and np.array_equal(overlay[..., 3] > 0, labels > 0), "background is see-through"


def test_release_reads_a_shard_only_when_asked(tiny_release: Path) -> None:
    release = Release(tiny_release / "train")
    assert len(release.sets) == 3 and not release._offsets
    s = release.sets[1]
    assert json.loads(release.member(s["split"], s["key"], "meta.json"))["set_id"] == s["key"]
    assert list(release._offsets) == [tiny_release / "train" / s["shard"]], "one shard indexed, the others untouched"


def test_page_in_headless_chromium(server: LocalServer, tmp_path: Path) -> None:
    require_chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome(tmp_path / "profile")
    try:
        driver.get(server.url)  # the URL printed at start: its token becomes the page's cookie
        wait = WebDriverWait(driver, 30)
        loaded = ("return document.querySelectorAll('#grid img.photo').length > 0 && "
                  "[...document.querySelectorAll('#grid img.photo, #lighting img')].every(i => i.complete && i.naturalWidth > 0)")
        wait.until(lambda d: d.execute_script(loaded))
        sets = json.loads(_get(server, "/api/sets"))["sets"]
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
        shot_path = output_dir("browse") / "browse.png"
        assert driver.save_screenshot(str(shot_path))
        shot = cv2.imread(str(shot_path))
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


@pytest.fixture(scope="module")
def relit_release(tmp_path_factory) -> Path:
    """One set whose 5 relit variants are 4x the original's pixel size and whose envmaps have
    long file names (one unbreakable token): what made the lighting panel overflow."""
    from tests.fixtures.portraits import make_fake_ingest
    from tests.fixtures.release import build_release

    root = tmp_path_factory.mktemp("relit")
    ingest = make_fake_ingest(root / "ingest")
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    return build_release(root, ingest, n_expressive=1, n_relit=5, size=64, relit_size=256, envmap_files=True,
                         max_sets_per_shard=1, test_id_fraction=0.0, test_ood_fraction=0.0)


@pytest.mark.parametrize("window", [(1400, 1000), (900, 800)])
def test_lighting_panel_stays_inside_its_column(relit_release: Path, tmp_path: Path, window: tuple[int, int]) -> None:
    """Every lighting variant, caption and metadata block inside the side column and the window,
    every variant drawn at the original's size; screenshot in test-output/browse/."""
    require_chromium()
    from selenium.webdriver.support.ui import WebDriverWait

    for srv in _serving(relit_release):
        driver = chrome(tmp_path / "profile", size=window)
        try:
            driver.get(srv.url)
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "const v = document.querySelectorAll('#lighting img');"
                "return v.length === 6 && [...v].every(i => i.complete && i.naturalWidth > 0)"))
            natural = driver.execute_script("return [...document.querySelectorAll('#lighting img')].map(i => i.naturalWidth)")
            assert natural[0] * 4 == natural[1] == natural[5], "the fixture's relit variants are 4x the original"
            assert layout_breaks(driver, "aside *", "aside") == []
            assert layout_breaks(driver, "main > *", "main") == []
            sizes = driver.execute_script("return [...document.querySelectorAll('#lighting img')].map(i => {"
                                          "const b = i.getBoundingClientRect(); return [Math.round(b.width), Math.round(b.height)]; })")
            assert len(set(map(tuple, sizes))) == 1 and sizes[0][0] > 40, f"variants drawn at different sizes: {sizes}"
            assert driver.save_screenshot(str(output_dir("browse") / f"lighting-{window[0]}.png"))
        finally:
            driver.quit()
