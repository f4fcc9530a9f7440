"""Headless Chromium driven by Selenium through Debian's chromedriver (tests/setup.sh installs
both; Selenium is told the driver's path, so it never downloads one)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SETUP_HINT = "run the README's test set-up command (bash tests/setup.sh installs chromium and chromium-driver)"
WIDTH, HEIGHT = 1440, 900


def _binaries() -> tuple[str, str]:
    found = [shutil.which(n) for n in ("chromium", "chromedriver")]
    if not all(found):
        message = f"chromium or chromedriver is not installed: {SETUP_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found[0] or "", found[1] or ""


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A Selenium WebDriver on headless Chromium with its own profile and a 1440×900 window."""
    binary, driver_path = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def press(driver: Any, keys: str) -> None:
    """Key presses sent to the page as a person types them."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def wait_for(driver: Any, script: str, what: str, timeout: float = 10) -> Any:
    """Wait until the JavaScript expression `script` is truthy; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return {script}"), message=f"waiting for {what}"
    )


# Every image whose box is at least partly on the first screen, with its box in CSS pixels.
FIRST_SCREEN_IMAGES = (
    "[...document.images].filter(i => { const r = i.getBoundingClientRect();"
    " return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; })"
)
