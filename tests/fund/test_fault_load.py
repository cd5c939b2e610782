"""Readers on the public pages and API while a large settlement posts and the engine ingests, on
PostgreSQL: no request fails and no answer ever shows a half-settled cycle. (The figures of the
1,000,000-position run are `make bench`'s: bench/load.py.)"""

import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from fund.models import LiquidationTakeover, SettlementCycle
from fund.services.cycles import cycles_close_due
from statements.models import ApiToken
from statements.services import api_token_create
from tests.factories import ContractFactory, FundFactory, UserFactory
from tests.helpers import (
    assert_books_hold,
    book_loss,
    deposit,
    report_many_profits,
    settle_in_background,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
POSITIONS = 40_000


def test_readers_never_see_a_half_settled_cycle_while_it_posts_and_intake_goes_on(
    live_server, monkeypatch
):
    from rest_framework.throttling import AnonRateThrottle

    monkeypatch.setitem(AnonRateThrottle.THROTTLE_RATES, "anon", "1000000/minute")
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(anchor=midnight - timedelta(days=1), screening_ratio="1")
    contract = ContractFactory(symbol="BTCUSDT", margin_asset=fund.asset)
    deposit(fund, "5000")
    book_loss(contract, "20000", fund.anchor + timedelta(hours=10))
    cycle = SettlementCycle.objects.get(fund=fund, starts_at=fund.anchor)
    report_many_profits(cycle, contract, {p: f"{p % 997 + 1}.25" for p in range(1, POSITIONS + 1)})
    cycles_close_due(now=cycle.settle_after)
    _, token = api_token_create(
        user=UserFactory(username="trading-engine"), kind=ApiToken.Kind.ENGINE, name="load"
    )

    base, stop = live_server.url, threading.Event()
    errors, violations, seen = [], [], []

    def get(path):
        with urllib.request.urlopen(base + path, timeout=60) as response:
            return response.read()

    def reader(paths):
        while not stop.is_set():
            for path in paths:
                try:
                    body = get(path)
                except (urllib.error.URLError, OSError) as exc:
                    errors.append(f"{path}: {exc}")
                    continue
                if path == f"/api/v1/cycles/{cycle.id}":
                    check_api(json.loads(body, parse_float=Decimal))
                elif path == f"/cycles/{cycle.id}/":
                    check_page(body.decode())
            connection.close()

    def check_api(c):
        seen.append(c["status"])
        if c["status"] != "settled":
            if any(
                c[k] is not None for k in ("loss", "fund_share", "apportioned", "participant_count")
            ):
                violations.append(f"unsettled cycle with figures: {c}")
        elif (
            Decimal(c["fund_share"])
            + Decimal(c["backstop"])
            + Decimal(c["apportioned"])
            + Decimal(c["uncovered"])
            != Decimal(c["loss"])
            or c["participant_count"] != POSITIONS
            or not c["apportionment_root"]
        ):
            violations.append(f"settled cycle with incomplete figures: {c}")

    def check_page(html):
        settled = "status-settled" in html
        if settled != ("Apportioned to participants" in html and "Merkle root over " in html):
            violations.append(
                "the report page shows a settled cycle without its figures, or figures unsettled"
            )

    paths = [
        "/",
        "/funds/USDT/",
        "/cycles/",
        f"/cycles/{cycle.id}/",
        "/api/v1/funds/USDT",
        "/api/v1/funds/USDT/records?page_size=20",
        f"/api/v1/cycles/{cycle.id}",
    ]
    readers = [threading.Thread(target=reader, args=(paths[i:] + paths[:i],)) for i in range(4)]
    for thread in readers:
        thread.start()
    try:
        settling, outcomes = settle_in_background(cycle)
        accepted, intake_done_while = 0, None
        for batch in range(5):  # the engine books profits and losses into today's cycle meanwhile
            now = timezone.now()
            body = json.dumps(
                {
                    "items": [
                        {
                            "external_id": f"load-{batch}-{i}",
                            "contract": "BTCUSDT",
                            "side": "long",
                            "quantity": "1",
                            "takeover_price": "100",
                            "close_price": "99" if i % 2 else "101",
                            "remaining_margin": "0.5",
                            "taken_over_at": (now - timedelta(seconds=2)).isoformat(),
                            "closed_at": (now - timedelta(seconds=1)).isoformat(),
                        }
                        for i in range(200)
                    ]
                }
            ).encode()
            request = urllib.request.Request(
                base + "/api/v1/ingest/liquidations",
                data=body,
                method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                assert response.status == 201
                accepted += json.loads(response.read())["created"]
            intake_done_while = intake_done_while or SettlementCycle.objects.get(pk=cycle.pk).status
        settling.join(timeout=300)
        time.sleep(1)  # the readers see the settled cycle for a while
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)

    assert not errors, errors[:5]
    assert not violations, violations[:5]
    assert [o.posted for o in outcomes] == [True], outcomes
    assert "settling" in seen and seen[-1] == "settled", sorted(set(seen))
    assert intake_done_while == "settling", "the first batch waited for the settlement"
    assert (
        LiquidationTakeover.objects.filter(external_id__startswith="load-").count()
        == accepted
        == 1000
    )
    assert re.search(rb"status-settled", get(f"/cycles/{cycle.id}/"))
    assert_books_hold(fund)
