"""A real headless browser: Debian's chromium, driven through its chromedriver by Selenium.

`make browser` (run by `make test`) installs both with apt-get when missing and allowed
(root, or sudo without a password). Nothing is downloaded otherwise: Selenium is given
both paths, so its own driver manager never runs. Without them these tests are skipped
and say so."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[2]
# Where the page's screenshots go when asked: FLASHSALE_SCREENSHOTS=docs (from the
# repository's root) writes docs/waiting-room-<state>.png.
SCREENSHOTS = os.environ.get("FLASHSALE_SCREENSHOTS", "")
# A phone's screen, emulated (CSS pixels, device pixel ratio): the page is made for phones
# first. A desktop window is never narrower than 500 pixels.
PHONE = {"width": 390, "height": 660, "pixelRatio": 2}
# Chromium's own traffic to outside hosts, off: the tests talk to 127.0.0.1 only.
QUIET = (
    "--headless=new",
    "--no-sandbox",  # as root (CI) chromium refuses to start with its sandbox
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-pings",
    "--hide-scrollbars",
    "--lang=en-GB",
)


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found is None and Path("/usr/bin", name).is_file():  # PATH without /usr/bin
            found = f"/usr/bin/{name}"
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = _binary("chromium", "chromium-browser")
    chromedriver = _binary("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip(
            "no chromium or chromedriver on this machine: `make browser` installs Debian's "
            "(apt-get install chromium chromium-driver, as root or with sudo)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in QUIET:
        options.add_argument(argument)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE})
    profile = tempfile.mkdtemp(prefix="flashsale-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    # The console (CSP violations, script errors) and the network, read by the tests.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shots() -> Iterator[Callable[[WebDriver, str], None]]:
    """`shots(driver, "waiting")` saves docs/waiting-room-waiting.png when screenshots are
    asked for (FLASHSALE_SCREENSHOTS), and does nothing otherwise."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else None
    if folder is not None and not folder.is_absolute():
        folder = ROOT / folder

    def take(driver: WebDriver, state: str) -> None:
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(folder / f"waiting-room-{state}.png"))

    yield take
