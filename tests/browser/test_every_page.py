"""Every page, as traders and staff use it: at phone (390×844) and desktop (1366×900) width, in
light and dark, as a visitor, a trader and an admin. axe-core finds no critical or serious
violation on any page; no page scrolls sideways and on a phone every table cell (the amounts,
the links) lies inside the screen; a first visit to a chart page transfers at most 1.5 MB."""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import expect

from fund.models import FundRecord, SettlementCycle
from statements.models import Statement

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Layout at both widths in both schemes; axe at a phone in dark and a desktop in light, which
# covers both widths and both schemes' colours (a scheme's colours are the same at any width).
VIEWS = [
    ((390, 844), "dark", True),
    ((1366, 900), "light", True),
    ((390, 844), "light", False),
    ((1366, 900), "dark", False),
]
FIRST_VISIT_MAX = 1_500_000  # bytes
axe = Axe()


@pytest.fixture
def site(live_server):
    """Four days of the demo, its trader and admin logged in through the site's sessions."""
    call_command("load_demo", "--days", "4", "--seed", "11", verbosity=0)
    settled = SettlementCycle.objects.filter(status="settled", participant_count__gt=0).first()
    opened = SettlementCycle.objects.filter(status="open").first()
    trader = Statement.objects.filter(account__user__username="trader001").first()
    pages = {
        None: ["/", "/funds/USDT/", "/funds/BTC/daily/", "/cycles/", f"/cycles/{settled.id}/",
               f"/cycles/{opened.id}/", "/rules/", "/faq/", "/api/docs/", "/accounts/login/",
               "/no-such-page/"],
        "trader001": ["/me/statements/", f"/me/statements/{trader.id}/", "/me/positions/",
                      "/me/notifications/", "/me/settings/", "/me/tokens/", "/ops/"],
        "admin": ["/ops/", "/ops/audit/", f"/ops/cycles/{opened.id}/", "/ops/webhooks/",
                  "/ops/funds/USDT/move/", "/ops/funds/USDT/correct/", "/ops/funds/USDT/schedule/"],
    }  # fmt: skip
    cookies = {}
    for username in ("trader001", "admin"):
        client = Client()
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username=username))
        cookies[username] = client.cookies["sessionid"].value
    return {"url": live_server.url, "pages": pages, "cookies": cookies}


def _context(browser, site, who, size, scheme):
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]},
        color_scheme=scheme,
        is_mobile=size[0] < 800,
        has_touch=size[0] < 800,
        bypass_csp=True,  # axe's script is injected into the page
    )
    if who:
        context.add_cookies(
            [{"name": "sessionid", "value": site["cookies"][who], "url": site["url"]}]
        )
    return context


CELLS_OUTSIDE = """() => [...document.querySelectorAll('main td, main th[scope=row]')]
  .filter(c => { const r = c.getBoundingClientRect();
                 return r.width > 0 && (r.left < -1 || r.right > innerWidth + 1); })
  .map(c => c.textContent.trim().slice(0, 40))"""


def test_every_page_is_accessible_and_fits_the_screen(site, browser, screenshots):
    """One test for the four views: the demo is loaded once (a load per test costs seconds,
    more on PostgreSQL)."""
    problems = []
    for size, scheme, check_axe in VIEWS:
        problems += _walk(site, browser, screenshots, size, scheme, check_axe)
    assert problems == [], "\n".join(map(str, problems))
    _the_money_is_on_a_phone_screen_with_its_label(site, browser)
    for path in ("/", "/funds/USDT/"):
        _a_first_visit_transfers_at_most_one_and_a_half_megabytes(site, browser, path)


def _walk(site, browser, screenshots, size, scheme, check_axe) -> list:
    problems = []
    for who, paths in site["pages"].items():
        context = _context(browser, site, who, size, scheme)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
        for path in paths:
            page.goto(site["url"] + path)  # waits for "load": deferred scripts have run
            name = re.sub(r"[^a-z0-9]+", "_", path).strip("_") or "home"
            page.screenshot(
                path=screenshots / f"every-{who or 'visitor'}-{name}-{size[0]}-{scheme}.png"
            )
            found = axe.run(page).response["violations"] if check_axe else []
            bad = [
                (v["id"], len(v["nodes"])) for v in found if v["impact"] in ("critical", "serious")
            ]
            if bad:
                problems.append((who, path, "axe", bad))
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > size[0]:
                problems.append((who, path, "scrolls sideways", wide))
            outside = page.evaluate(CELLS_OUTSIDE)
            if outside:
                problems.append((who, path, "cells outside the screen", outside[:5]))
        if errors:
            problems.append((who, "console", errors))
        context.close()
    return problems


def _the_money_is_on_a_phone_screen_with_its_label(site, browser):
    """On a phone a statement's amount and its computation link are on screen, each labelled
    with its column's name, and the menu folds the header's links."""
    context = _context(browser, site, "trader001", (390, 844), "light")
    page = context.new_page()
    page.goto(site["url"] + "/me/statements/")
    first = page.locator("table.statements tbody tr").first
    amount = first.locator("td.num").first
    assert amount.get_attribute("data-label") == "Amount"
    box = amount.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    link = first.get_by_role("link", name=re.compile("^Computation"))
    assert link.is_visible() and link.bounding_box()["x"] + link.bounding_box()["width"] <= 390
    assert not page.get_by_role("link", name="My positions").is_visible()  # folded
    page.get_by_role("button", name="Menu").click()
    assert page.get_by_role("link", name="My positions").is_visible()
    # A touch screen's charts have no toolbar over their buttons; the flows chart draws the
    # outflows below the line and keeps the exchange's own deposits behind their legend entry.
    page.goto(site["url"] + "/funds/USDT/")
    page.locator("#flows-chart .main-svg").first.wait_for()
    assert page.locator(".modebar-btn").count() == 0
    flows = page.evaluate(
        "document.getElementById('flows-chart').data"
        ".map(t => [t.name, t.visible, Math.max(...t.y)])"
    )
    assert ["Deposit", "legendonly"] in [f[:2] for f in flows]
    assert all(top < 0 for name, _, top in flows if name.startswith("Settlement"))
    page.get_by_role("button", name="7 days", exact=True).tap()
    expect(page.get_by_role("button", name="7 days", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    context.close()


def _a_first_visit_transfers_at_most_one_and_a_half_megabytes(site, browser, path):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # a first visit
    sizes = {}
    cdp.on(
        "Network.responseReceived",
        lambda e: sizes.setdefault(e["requestId"], [e["response"]["url"], 0]),
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: sizes.get(e["requestId"], [None, 0]).__setitem__(1, e["encodedDataLength"]),
    )
    page.goto(site["url"] + path)
    page.wait_for_load_state("networkidle")
    page.locator(".main-svg").first.wait_for()
    total = sum(size for _, size in sizes.values())
    assert total <= FIRST_VISIT_MAX, sorted(sizes.values(), key=lambda s: -s[1])[:5]
    bundle = [size for url, size in sizes.values() if "plotly-basic" in url]
    assert bundle and bundle[0] < 400_000  # the basic bundle, brotli-compressed
    cached = page.request.get(site["url"] + "/static/vendor/plotly/plotly-basic-4.1.1.min.js")
    assert "immutable" in cached.headers["cache-control"]
    context.close()
    assert FundRecord.objects.exists()
