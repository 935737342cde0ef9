"""The search page in a real browser: Debian's chromium, headless, through Selenium.

Types a query into the box, checks the ranked list and the timeline in the DOM, clicks
a moment (the player gets the video at that moment) and writes a screenshot
(search_page.png in the test's temporary folder; its path is printed). Errors (no such
index, an empty query) are shown on the page.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from tests import search_testing
from vlanet_tf.search.index import build_index
from vlanet_tf.search.model import SearchModel
from vlanet_tf.search.retrieval import Searcher
from vlanet_tf.search.web import SearchApp, make_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _serve(app):
    server = make_server(app, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# ~4 s after tests/test_search.py has trained the shared run; ~20 s alone.
def test_a_query_in_the_browser(browser, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = search_testing.trained_run(tmp_path_factory.mktemp("search_run"))
    model = SearchModel.from_run(str(run.model_dir))
    index = tmp_path / "idx"
    build_index(model, str(run.features), str(index), str(run.test_durations), progress=False)
    videos = tmp_path / "videos"
    videos.mkdir()
    searcher = Searcher.open(str(index), candidates=10)
    for vid in searcher.index.data.video_ids.tolist():
        (videos / f"{vid}.mp4").write_bytes(b"\0" * 64)  # placeholders: the page, not codecs
    server, url = _serve(SearchApp(lambda: searcher, str(videos)))
    try:
        browser.get(url)
        assert server.server_address[0] == "127.0.0.1"
        box = browser.find_element(By.ID, "q")
        box.send_keys("a person opens the door")
        browser.find_element(By.ID, "go").click()
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.video")) == 10)
        items = browser.find_elements(By.CSS_SELECTOR, "li.video")
        expected = searcher.search("a person opens the door", top_videos=10)
        assert [i.get_attribute("data-video") for i in items] == [
            v.video_id for v in expected.videos
        ]
        first = items[0]
        marks = first.find_elements(By.CSS_SELECTOR, ".timeline .moment")
        assert len(marks) == len(expected.videos[0].moments) > 0
        best = expected.videos[0]
        left = float(marks[0].value_of_css_property("left").rstrip("px"))
        width = first.find_element(By.CSS_SELECTOR, ".timeline").size["width"]
        assert left / width == pytest.approx(best.moments[0][0] / best.duration, abs=0.02)
        assert browser.find_element(By.ID, "error").text == ""
        marks[0].click()
        src = browser.find_element(By.ID, "player").get_attribute("src")
        start, end = best.moments[0][:2]
        assert src.endswith(f"/videos/{best.video_id}#t={start:.2f},{end:.2f}")
        shot = tmp_path / "search_page.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        keep = os.environ.get("SEARCH_PAGE_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
        print(f"screenshot: {shot}")

        box.clear()
        browser.find_element(By.ID, "go").click()
        wait.until(lambda d: "empty" in d.find_element(By.ID, "error").text)
        assert not browser.find_elements(By.CSS_SELECTOR, "li.video")
    finally:
        server.shutdown()
        server.server_close()


def test_no_such_index_is_shown_on_the_page(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def missing():
        return Searcher.open(str(tmp_path / "nope"))

    server, url = _serve(SearchApp(missing, str(tmp_path)))
    try:
        browser.get(url)
        assert "is not a search index" in browser.find_element(By.ID, "error").text
        assert "Traceback" not in browser.page_source
        browser.find_element(By.ID, "q").send_keys("a person opens the door")
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 10).until(
            lambda d: "cannot open the index" in d.find_element(By.ID, "error").text
        )
    finally:
        server.shutdown()
        server.server_close()
