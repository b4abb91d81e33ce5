"""A real browser (Debian's Chromium, driven by Playwright) opens the dashboard after known
traffic: the headline numbers must match the admin API's, every chart must render, and a
screenshot is saved (a CI artifact file).

Driven by the Rust test `dashboard::a_real_browser_renders_the_dashboard`, which passes the
page's URL, the expected figures (from /admin/usage) and where to save the screenshot.
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

url = os.environ["DASHBOARD_URL"]
expected = json.loads(os.environ["EXPECTED"])
shot = os.environ["SCREENSHOT"]
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1360, "height": 1000}, color_scheme="light")
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('live')", timeout=15000)
    text = lambda id: page.text_content("#" + id).strip()
    assert text("requests") == f"{expected['requests']:,}", (text("requests"), expected)
    assert text("hits").startswith(f"{expected['cache_hits']:,} "), (text("hits"), expected)
    v = expected["saved_usd"]
    saved = "$" + (f"{v:.2f}" if v >= 1 else f"{v:.4f}" if v >= 0.01 else f"{v:.6f}")
    assert text("saved-today") == saved, (text("saved-today"), saved)
    # Every chart loaded as an image with a size.
    page.wait_for_function(
        "[...document.querySelectorAll('img[data-chart]')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=15000,
    )
    charts = page.eval_on_selector_all("img[data-chart]", "els => els.map(e => e.naturalWidth)")
    assert len(charts) == 4 and all(w >= 600 for w in charts), charts
    rows = page.eval_on_selector_all("#recent tr", "els => els.length")
    assert rows == expected["requests"], rows
    assert not errors, errors
    page.screenshot(path=shot, full_page=True)
    browser.close()
print("DASHBOARD_OK")
