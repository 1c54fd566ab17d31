"""The web page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; nothing downloaded).

A user searches an item by title, clicks it into the history, and sees recommendations with titles.
Skipped only when Playwright or the system Chromium is missing (.ci/run installs both).
"""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
CHROMIUM = os.environ.get("SIDREC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM:
        pytest.skip("no system Chromium (apt-get install chromium; .ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        yield page
        browser.close()


def test_search_add_to_history_and_recommend(page, server, toy_model):
    title = toy_model.titles[5]
    word = max(title.split(), key=len)
    page.goto(server + "/")
    sync_api.expect(page.locator("#status")).to_contain_text(f"{toy_model.n_items} items")
    page.fill("#q", word)
    hit = page.locator(f'#results li[data-id="{toy_model.item_ids[5]}"]')
    if hit.count() == 0:  # more than 10 titles share the word: take the first hit instead
        hit = page.locator("#results li[data-id]").first
    hit.wait_for()
    chosen = hit.get_attribute("data-id")
    hit.click()
    sync_api.expect(page.locator("#history li")).to_have_count(1)
    rows = page.locator("#recs tbody tr")
    sync_api.expect(rows).to_have_count(10)
    shown = [rows.nth(i).get_attribute("data-id") for i in range(10)]
    expected = [r.item_id for r in toy_model.recommend([chosen], k=10)]
    assert shown == expected
    first = rows.nth(0).locator("td").nth(1).inner_text()
    assert first.startswith(toy_model.item(expected[0])["title"]) and first.endswith(expected[0])  # title, then id
    assert page.locator("#error").inner_text() == ""
    rows.nth(1).click()  # a recommended item goes into the history too
    sync_api.expect(page.locator("#history li")).to_have_count(2)
    sync_api.expect(page.locator("#took")).to_contain_text("10 items in")
    page.fill("#k", "0")
    page.dispatch_event("#k", "change")
    sync_api.expect(page.locator("#error")).to_have_text("k must be a whole number from 1 to 100")
    assert page.locator("#took").inner_text() == "" and rows.count() == 0  # no stale timing under no table
