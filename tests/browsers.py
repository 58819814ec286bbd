"""Chromium for browser tests: Debian's ``chromium`` driven by its ``chromium-driver``
(nothing is downloaded), one browser per test process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=900,1000",
)


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    """One browser for the run, driven by the Debian chromedriver (nothing is downloaded)."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not program.exists():
            pytest.fail(
                f"{program} is missing: the browser tests need Debian's chromium and "
                "chromium-driver (apt-get install chromium chromium-driver)",
                pytrace=False,
            )
    profile = tempfile.mkdtemp(prefix="payout131-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: WebDriver) -> WebDriver:
    chromium.set_window_size(900, 1000)
    return chromium


def wait_for(browser: WebDriver, condition: Any, timeout: float = 10) -> Any:
    """``condition(browser)`` once truthy; an element replaced meanwhile (htmx swapped the
    page in) is looked up again."""
    stale = (StaleElementReferenceException,)
    return WebDriverWait(browser, timeout, ignored_exceptions=stale).until(condition)
