"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium;
.ci/install-browser installs them): pick a picture, ask, watch the reply stream in, see the boxes of the
grounded reply drawn over the picture with their label, and the timings. The model behind the server
is the tiny one with a scripted grounded reply (tests/server/doubles.py). A screenshot is saved in the
test's tmp dir."""

from __future__ import annotations

import shutil
import time

import pytest

from serving import Served
from doubles import GROUNDED, ScriptedModel, pieces

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="Chromium and its driver are not installed (Debian: .ci/install-browser "
                                       "runs apt-get install chromium chromium-driver)")


@pytest.fixture()
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def test_upload_ask_stream_and_see_the_boxes(browser, served_model, pictures, tmp_path):
    from selenium.webdriver.common.by import By

    model = ScriptedModel(served_model, pieces(GROUNDED, 4), delay_s=0.15)
    with Served(model) as server:
        browser.get(server.url + "/")
        wait_for(lambda: browser.find_element(By.ID, "status").text.startswith("ready"), "the page to see the server")
        browser.find_element(By.ID, "files").send_keys(pictures[1])
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#pending img"), "the picked picture's thumbnail")
        browser.find_element(By.ID, "question").send_keys("Where is the red block?")
        browser.find_element(By.ID, "send").click()

        seen = set()  # the reply's text as it grows

        def finished():
            texts = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .text")
            if texts:
                seen.add(texts[-1].text)
            return browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .timings")

        wait_for(finished, "the reply to finish")
        reply = browser.find_element(By.CSS_SELECTOR, ".msg.assistant .text").text
        assert reply == "There is a red block on the left."  # tags hidden, the ref's text kept
        partial = {t for t in seen if t and t != reply}
        assert len(partial) >= 2, f"the reply did not stream: saw {seen}"

        picture = browser.find_element(By.CSS_SELECTOR, "figure.boxed img")
        (box,) = browser.find_elements(By.CSS_SELECTOR, "figure.boxed .box")
        assert box.find_element(By.CSS_SELECTOR, ".label").text == "a red block"
        p, b = picture.rect, box.rect  # the box (100,200),(600,900) in per mille of the shown picture
        assert p["width"] > 50 and p["height"] > 50
        for got, want in [(b["x"], p["x"] + 0.1 * p["width"]), (b["y"], p["y"] + 0.2 * p["height"]),
                          (b["width"], 0.5 * p["width"]), (b["height"], 0.7 * p["height"])]:
            assert abs(got - want) <= 2, (b, p)
        assert "decode" in browser.find_element(By.CSS_SELECTOR, ".msg.assistant .timings").text
        shot = tmp_path / "page.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"\nscreenshot: {shot}")
