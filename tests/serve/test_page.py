"""The web page in real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
Selenium; never a downloaded browser): a question typed, an answer streamed in with its
citation and sources, the adapter switched. The screenshot is saved for a person to look at
($RAGTUNE_SCREENSHOT, else the test's temp folder)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from ragtune.generation.base import Generation
from ragtune.serve.pool import ModelEntry

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium / chromium-driver not installed"
)


class TwoAdapters:
    """A pool whose adapters answer differently, streaming word by word."""

    base_name = "base"

    def __init__(self) -> None:
        self.entries = {
            n: ModelEntry(n, None if n == "base" else n, None) for n in ("base", "a1", "a2")
        }
        self.generator = self
        self.replies = {"base": "I am not sure.", "a1": "Ada Quill", "a2": "in 1871"}
        self.copied: list[bool] = []  # per call: was the answer to be copied from passages?

    def count_prompt_tokens(self, messages) -> int:  # type: ignore[no-untyped-def]
        return sum(len(m["content"].split()) for m in messages)

    def generate(self, name, batch, max_new_tokens, refusals=None, stream=None, spans=None):  # type: ignore[no-untyped-def]
        out = []
        self.copied.append(spans is not None)
        for i, _ in enumerate(batch):
            words = self.replies[name].split(" ")
            for j, w in enumerate(words):
                if stream is not None:
                    stream.text(i, (" " if j else "") + w)
                time.sleep(0.05)
            out.append(Generation(self.replies[name], len(words), 0.1, len(batch), prompt_tokens=9))
        return out


def test_page_streams_an_answer_with_citation_and_switches_adapter(
    start_server, docs_index: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    pool = TwoAdapters()
    url, _ = start_server(pool, indexes={"docs": docs_index})
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1100,1000",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: len(Select(d.find_element("id", "model")).options) == 3)
        assert Select(driver.find_element("id", "index")).first_selected_option.text == "docs"
        Select(driver.find_element("id", "model")).select_by_visible_text("a1")
        driver.find_element("id", "question").send_keys("Who founded Marlowe Station?")
        driver.find_element("id", "ask").click()
        wait.until(
            lambda d: (
                d.find_element("id", "answer").text.startswith("Ada Quill")
                and d.find_elements("id", "cites")
            )
        )
        assert driver.find_element("id", "cites").text == "[1]"
        cited = driver.find_elements("css selector", ".source.cited .where")
        assert cited and "guide.md" in cited[0].text and "Marlowe Station" in cited[0].text
        shot = Path(os.environ.get("RAGTUNE_SCREENSHOT") or tmp_path / "page.png")
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        # The box starts at the server's setting (off) and asks for copied answers when ticked.
        box = driver.find_element("id", "extractive")
        assert not box.is_selected() and pool.copied == [False]
        box.click()
        Select(driver.find_element("id", "model")).select_by_visible_text("a2")
        driver.find_element("id", "ask").click()
        wait.until(lambda d: d.find_element("id", "answer").text.startswith("in 1871"))
        assert pool.copied == [False, True]
        # Chat mode answers freely: the box is hidden there.
        assert driver.find_element("id", "copyfield").is_displayed()
        Select(driver.find_element("id", "index")).select_by_visible_text("none (chat)")
        assert not driver.find_element("id", "copyfield").is_displayed()
        driver.find_element("id", "ask").click()  # the ticked box is not sent in chat mode
        wait.until(
            lambda d: len(pool.copied) == 3 and "1871" in d.find_element("id", "answer").text
        )
        assert pool.copied[-1] is False
    finally:
        driver.quit()
