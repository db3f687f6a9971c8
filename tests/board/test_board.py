"""The live board at `/` (issue 12) in Debian's Chromium against a real `fundflow demo`.

One demo process serves the whole module. The tests that do not need the seed
day run first, while the demo is still replaying the 25-day history; the last
test waits for the seed day 2025-09-12 (Alibaba 15 days, top 3 Alibaba,
Tencent, Meituan) and saves a screenshot under tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.board.conftest import artifact, elapsed

# a real demo server and a browser: not part of `make test-unit` (-m "not integration")
pytestmark = pytest.mark.integration

SEED_DAY = "2025-09-12"
TOP3 = ["Alibaba", "Tencent", "Meituan"]
# Chromium reports any HTTP error response of a fetch as a console error; these
# are the ones a test provokes on purpose.
PROVOKED = re.compile(r"Failed to load resource: the server responded with a status of (401|500)")

PIXELS = """(id) => {
  const c = document.getElementById(id);
  if (!c || !c.width || !c.height) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let drawn = 0, green = 0, red = 0, blue = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] === 0) continue;
    drawn++;
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (g > 100 && r < 70 && b < 90) green++;
    if (r > 170 && g < 70 && b < 70) red++;
    if (b > 110 && r < 40 && g < 110) blue++;
  }
  return {w: c.width, h: c.height, drawn, green, red, blue};
}"""


def _expect():
    from playwright.sync_api import expect

    return expect


def _board_loaded(page, url: str) -> None:
    expect = _expect()
    page.goto(url + "/")
    expect(page.locator("#top-table tbody tr").first).to_be_visible(timeout=20_000)
    expect(page.locator("body")).to_have_attribute("data-stale", "false", timeout=10_000)


def test_page_and_assets_are_served_offline(page, demo):
    """Everything the page loads comes from the service itself (no CDN), with the vendored licence beside the lib."""
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    _board_loaded(page, demo.url)
    foreign = [u for u in requested if not u.startswith(demo.url) and not u.startswith("data:")]
    assert not foreign, f"the board fetched from elsewhere: {foreign}"
    lic = page.request.get(demo.url + "/static/vendor/chart.js.LICENSE.md")
    assert lic.ok and "MIT License" in lic.text()
    assert page.evaluate("typeof window.Chart") == "function"
    assert page.locator("#top-chart").get_attribute("aria-label")
    assert not page.errors, page.errors


def test_stale_marker_on_api_error_then_recovery(page, demo):
    expect = _expect()
    _board_loaded(page, demo.url)
    stale = page.locator("#stale")
    expect(stale).to_be_hidden()
    rows_before = page.locator("#top-table tbody tr").count()

    def fail(route):
        route.fulfill(status=500, content_type="application/json",
                      body=json.dumps({"error": {"status": 500, "message": "injected failure"}}))

    page.route("**/api/v1/**", fail)
    expect(stale).to_be_visible(timeout=8_000)
    expect(stale).to_contain_text("Stale")
    expect(stale).to_contain_text("500")
    expect(page.locator("body")).to_have_attribute("data-stale", "true")
    # the last good data stays on the page
    assert page.locator("#top-table tbody tr").count() == rows_before

    page.unroute("**/api/v1/**", fail)
    expect(stale).to_be_hidden(timeout=10_000)
    expect(page.locator("body")).to_have_attribute("data-stale", "false")
    expect(page.locator("#updated")).to_contain_text("Updated")
    unexpected = [e for e in page.errors if not PROVOKED.search(e)]
    assert not unexpected, unexpected


def test_token_is_asked_once_and_kept_in_memory(page, demo):
    """The API answers 401 without the token (as the service does with [http] token set)."""
    expect = _expect()
    token = "s3cret-board-token"

    def guard(route):
        if route.request.headers.get("authorization") == f"Bearer {token}":
            route.continue_()
        else:
            route.fulfill(status=401, content_type="application/json",
                          headers={"WWW-Authenticate": 'Bearer realm="fundflow"'},
                          body=json.dumps({"error": {"status": 401, "message": "missing or wrong bearer token"}}))

    page.route("**/api/v1/**", guard)
    page.goto(demo.url + "/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible(timeout=10_000)
    page.get_by_label("Token", exact=True).fill("wrong")
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-msg")).to_contain_text("rejected", timeout=10_000)
    expect(dialog).to_be_visible()
    page.get_by_label("Token", exact=True).fill(token)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden(timeout=10_000)
    expect(page.locator("#top-table tbody tr").first).to_be_visible(timeout=10_000)
    expect(page.locator("body")).to_have_attribute("data-stale", "false", timeout=10_000)
    kept = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie + location.href")
    assert token not in kept
    # later refreshes reuse the token without asking again
    time.sleep(2.5)
    expect(dialog).to_be_hidden()
    unexpected = [e for e in page.errors if not PROVOKED.search(e)]
    assert not unexpected, unexpected


def test_seed_day_story_in_the_browser(page, demo):
    expect = _expect()
    t0 = time.monotonic()
    page.goto(demo.url + "/")
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded
    # The page refreshes itself (no reload) until the demo reaches the seed day.
    try:
        page.wait_for_function(
            "(day) => document.getElementById('as-of').textContent.startsWith(day)", arg=SEED_DAY, timeout=90_000)
    except Exception:  # noqa: BLE001 - any failure gets the screenshot and the demo log
        page.screenshot(path=str(artifact("board-timeout.png")), full_page=True)
        raise AssertionError(f"board never reached {SEED_DAY} (as_of {page.inner_text('#as-of')!r});"
                             f" demo log:\n{demo.tail()}") from None
    print(f"seed day on the board after {elapsed(t0)}")

    top_names = page.locator("#top-table tbody tr td.name")
    for i, want in enumerate(TOP3):
        expect(top_names.nth(i)).to_have_text(want, timeout=10_000)
    assert top_names.all_inner_texts()[:3] == TOP3

    row = page.locator('#streak-table tbody tr[data-symbol="09988.HK"]')
    expect(row.locator("td.days")).to_have_text("15", timeout=10_000)
    expect(row.locator("td.name")).to_have_text("Alibaba")
    # longest first, and today's running total marked provisional
    assert page.locator("#streak-table tbody tr").first.get_attribute("data-symbol") == "09988.HK"
    expect(row.locator(".prov")).to_have_count(1)
    expect(page.locator("#story")).to_contain_text("Alibaba (09988.HK) has been net-bought 15 days in a row")
    expect(page.locator("#top-table tbody tr").first.locator("td.num").last).to_have_text(re.compile(r"^HK\$\d+\.\dbn$"))

    # header: market state per exchange, rates, lag, alerts
    expect(page.locator("#markets .pill")).to_have_count(3)
    expect(page.locator("#events-rate")).not_to_have_text("—", timeout=6_000)
    expect(page.locator("#alerts")).to_contain_text("firing")

    # keyboard: focus the Tencent row in the streak table and select it with Enter
    tencent = page.locator('#streak-table tbody tr[data-symbol="00700.HK"]')
    tencent.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-h")).to_contain_text("Tencent 00700.HK", timeout=6_000)
    expect(tencent).to_have_attribute("aria-current", "true")
    # click: back to Alibaba, whose 15 closed days are all net buys (green)
    page.locator('#top-table tbody tr[data-symbol="09988.HK"]').click()
    expect(page.locator("#detail-h")).to_contain_text("Alibaba 09988.HK", timeout=6_000)
    expect(page.locator("#detail-summary")).to_contain_text("15-day net-buy streak")
    page.wait_for_timeout(2_500)  # one more refresh so the history chart shows Alibaba

    top = page.evaluate(PIXELS, "top-chart")
    hist = page.evaluate(PIXELS, "history-chart")
    assert top and top["drawn"] > 0.02 * top["w"] * top["h"], top
    assert top["green"] > 1_000, top  # the net-buy bars
    assert hist and hist["green"] > 1_000, hist
    etf_canvas = page.locator("#etfs canvas").first
    etf_id = page.evaluate("(c) => c.id = c.id || 'etf-canvas-0'", etf_canvas.element_handle())
    etf = page.evaluate(PIXELS, etf_id)
    assert etf and etf["drawn"] > 0.01 * etf["w"] * etf["h"], etf  # axes and the two turnover curves
    expect(page.locator("#etfs article")).to_have_count(4)
    expect(page.locator("#etfs article .compare").first).to_contain_text("by the same time")

    assert page.evaluate("window.__sameDocument") is True, "the board reloaded the page"
    path = artifact("board.png")
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    assert not page.errors, page.errors
    print(f"screenshot {path} after {elapsed(t0)}")
