"""The README's screenshots, in headless Debian Chromium (Playwright; no browser download).

    sidrec serve --out runs/beauty &                       # then:
    python docs/make_screenshots.py http://127.0.0.1:8000 runs/beauty/report.html

Writes docs/serve_page.png (search "shampoo", two items into the history, top-10) and
docs/report.png (the top of report.html).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

DOCS = Path(__file__).resolve().parent


def main(url: str, report: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(url + "/")
        page.fill("#q", "shampoo")
        page.locator("#results li[data-id]").nth(1).click()
        expect(page.locator("#recs tbody tr")).to_have_count(10)
        page.locator("#results li[data-id]").nth(2).click()
        expect(page.locator("#history li")).to_have_count(2)
        expect(page.locator("#recs tbody tr")).to_have_count(10)
        page.wait_for_timeout(300)
        page.screenshot(path=str(DOCS / "serve_page.png"))
        report_page = browser.new_page(viewport={"width": 1100, "height": 1400})
        report_page.goto(Path(report).resolve().as_uri())
        report_page.screenshot(path=str(DOCS / "report.png"))
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
