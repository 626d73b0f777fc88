"""Headless Chromium for the page tests (the shard browser, the photo app): Debian's chromium +
chromium-driver driven by selenium, a skip where they are missing (a failure under CI=true),
and the layout check both pages' screenshot tests use."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"


def output_dir(page: str) -> Path:
    """Where a page test saves its screenshot: $PIQ_TEST_OUTPUT/<page> (default test-output/)."""
    out = Path(os.environ.get("PIQ_TEST_OUTPUT", REPO / "test-output")) / page
    out.mkdir(parents=True, exist_ok=True)
    return out


def require_chromium() -> None:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium / chromedriver are missing: .ci/run installs them (apt-get install chromium chromium-driver)")
        pytest.skip("chromium and chromedriver not installed (apt-get install -y chromium chromium-driver); CI runs this test")
    pytest.importorskip("selenium", reason="pip install selenium (a dev dependency)")


def chrome(profile: Path, size: tuple[int, int] = (1400, 1000), downloads: Path | None = None):
    """A headless Chromium window of `size`; `downloads`: the folder downloads land in."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(DRIVER), options=options)


# Every element matching `inner` whose box leaves the box of its closest `outer` ancestor or the
# window's width (1 px slack for sub-pixel rounding), and whether the page scrolls sideways.
_LAYOUT_JS = """
const [inner, outer] = arguments, bad = [], width = document.documentElement.clientWidth;
for (const el of document.querySelectorAll(inner)) {
  const b = el.getBoundingClientRect(), box = el.closest(outer).getBoundingClientRect();
  if (b.left < box.left - 1 || b.right > box.right + 1 || b.right > width + 1 || b.left < -1)
    bad.push(`${el.tagName.toLowerCase()}${el.alt ? '[' + el.alt + ']' : ''} [${Math.round(b.left)}, ${Math.round(b.right)}]`
             + ` outside ${outer} [${Math.round(box.left)}, ${Math.round(box.right)}] / window ${width}`);
}
return {bad, scrolls_sideways: document.documentElement.scrollWidth > width};
"""


def layout_breaks(driver, inner: str, outer: str) -> list[str]:
    """What of `inner` sticks out of its `outer` column or the window (empty: the layout holds)."""
    found = driver.execute_script(_LAYOUT_JS, inner, outer)
    return found["bad"] + (["the page scrolls sideways"] if found["scrolls_sideways"] else [])
