"""Ingestion throughput through the HTTP API on PostgreSQL (bench/run.py drives it).

A fresh database, one USDT fund, gunicorn on 127.0.0.1, the trading engine's token; then
10,000-item batches of liquidation takeovers and of position profits, each timed from the
client (request sent to answer read), beside the time PostgreSQL takes to COPY and commit the
same rows into the same tables (the floor): for takeovers, the takeover rows and the fund
records of the profitable ones (about 7 in 10 of the bench's), as the intake writes them; the
takeover rows alone are shown too.

    DATABASE_URL=postgres://… python bench/ingest.py [--batches 5] [--size 10000] [--without-log]

With --without-log the workers book without keeping the transparency log's tiles (bench/
gunicorn_without_log.py), so that bench/run.py prints intake with the log kept beside it.
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Sum  # noqa: E402
from django.utils import timezone  # noqa: E402
from webserver import gunicorn_command  # noqa: E402  (bench/webserver.py)

from fund.models import (  # noqa: E402
    Contract,
    Fund,
    FundRecord,
    LiquidationTakeover,
    LogTile,
    PositionProfit,
    SettlementCycle,
)
from fund.services.bulk import insert_rows, reserve_ids  # noqa: E402
from fund.services.cycles import cycles_close_due  # noqa: E402
from fund.services.ledger import RECORD_COLUMNS  # noqa: E402
from fund.services.liquidations import TAKEOVER_COLUMNS  # noqa: E402
from statements.models import ApiToken, Asset, TraderAccount  # noqa: E402
from statements.services import api_token_create  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "8097"))


def setup() -> str:
    call_command("migrate", verbosity=0)
    asset = Asset.objects.create(code="USDT", name="Tether USD", precision=8)
    Fund.objects.create(
        asset=asset, anchor=timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    )
    Contract.objects.create(symbol="BTCUSDT", margin_asset=asset, kind="linear")
    Contract.objects.create(symbol="ETHUSDT", margin_asset=asset, kind="linear", multiplier="0.01")
    cycles_close_due(now=timezone.now())
    from django.contrib.auth import get_user_model

    engine = get_user_model().objects.create(username="trading-engine")
    return api_token_create(user=engine, kind=ApiToken.Kind.ENGINE, name="bench")[1]


def takeovers(batch: int, size: int, prefix: str = "bench") -> list[dict]:
    """A batch of the engine's liquidation takeovers that closed half a minute ago."""
    now = timezone.now()
    return [
        {
            "external_id": f"{prefix}-{batch}-{i}",
            "contract": "BTCUSDT" if i % 3 else "ETHUSDT",
            "side": "long" if i % 2 else "short",
            "quantity": str(1 + i % 50),
            "takeover_price": f"{60000 + i % 997}.5",
            "close_price": f"{60000 + i % 991}.25",
            "remaining_margin": f"{10 + i % 89}.125",
            "taken_over_at": (now - timedelta(seconds=90)).isoformat(),
            "closed_at": (now - timedelta(seconds=30)).isoformat(),
        }
        for i in range(size)
    ]


def profits(batch: int, size: int) -> list[dict]:
    return [
        {
            "position_id": batch * 1_000_000 + i + 1,
            "account": f"ACC-{i % 5000:05d}",
            "contract": "BTCUSDT" if i % 3 else "ETHUSDT",
            "profit": f"{(i % 1000) - 150}.37",
        }
        for i in range(size)
    ]


def post(conn, token: str, path: str, body: dict) -> tuple[float, int, dict]:
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    conn.request("POST", path, payload, headers(token))
    response = conn.getresponse()
    answer = json.loads(response.read())
    return time.perf_counter() - started, response.status, answer


def copy_floor(size: int, records: int, runs: int) -> dict[str, float]:
    """The median over `runs` of COPY + commit of what one batch writes, shaped like the API's
    rows, into the same tables with the same keys, checks and triggers: `size` takeovers and the
    `records` fund records of the profitable ones (with their hash chain's columns), and
    `size` position profits."""
    fund = Fund.objects.get()
    cycle = SettlementCycle.objects.filter(status="open").order_by("starts_at").first()
    contract = Contract.objects.get(symbol="BTCUSDT")
    accounts = list(TraderAccount.objects.values_list("id", flat=True)[:5000])
    timings = {"takeovers": [], "takeover rows alone": [], "profits": []}
    for run in range(runs):
        now = timezone.now()
        for name in ("takeover rows alone", "takeovers"):
            started = time.perf_counter()
            with transaction.atomic():
                ids = reserve_ids(LiquidationTakeover, size)
                insert_rows(
                    LiquidationTakeover,
                    TAKEOVER_COLUMNS,
                    (
                        (ids[i], f"floor-{len(name)}-{run}-{i}", contract.id, fund.id, "long",
                         Decimal("2"), Decimal("60000.5"), Decimal("60010.25"), 1_000_000_000,
                         5, now, now, cycle.id, False, now)
                        for i in range(size)
                    ),
                )  # fmt: skip
                if name == "takeovers":  # and their records, following the chain's last
                    last = FundRecord.objects.filter(fund=fund).order_by("-seq").first()
                    seq, balance = (last.seq, last.balance_after_units) if last else (0, 0)
                    record_ids = reserve_ids(FundRecord, records)
                    insert_rows(
                        FundRecord,
                        RECORD_COLUMNS,
                        (
                            (record_ids[i], fund.id, seq + 1 + i, "liquidation_profit", 5,
                             balance + 5 * (i + 1), now, ids[i], cycle.id, None, "", None,
                             "0" * 64)
                            for i in range(records)
                        ),
                    )  # fmt: skip
                    Fund.objects.filter(pk=fund.pk).update(
                        balance_units=balance + 5 * records, head_hash="0" * 64
                    )
            timings[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        with transaction.atomic():
            ids = reserve_ids(PositionProfit, size)
            insert_rows(
                PositionProfit,
                ["id", "cycle_id", "position_id", "account_id", "contract_id", "profit_units",
                 "received_at"],
                (
                    (ids[i], cycle.id, 900_000_000 + run * size + i, accounts[i % len(accounts)],
                     contract.id, 1000 + i, now)
                    for i in range(size)
                ),
            )  # fmt: skip
        timings["profits"].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in timings.items()}


def concurrent(token: str, cycle: int, args) -> dict[str, float]:
    """Items per second with `args.streams` connections sending batches side by side (each
    stream `args.batches` batches, bodies encoded beforehand), per kind of batch."""
    rates = {}
    for kind in ("takeovers", "profits"):
        bodies = [
            [
                json.dumps(
                    {"items": takeovers(batch, args.size, prefix=f"stream{stream}")}
                    if kind == "takeovers"
                    else {"cycle": cycle, "items": profits(100 + stream * 50 + batch, args.size)}
                ).encode()
                for batch in range(args.batches)
            ]
            for stream in range(args.streams)
        ]
        path = "/api/v1/ingest/" + ("liquidations" if kind == "takeovers" else "position-profits")

        def send(stream_bodies, path=path):
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
            for payload in stream_bodies:
                conn.request("POST", path, payload, headers(token))
                response = conn.getresponse()
                answer = response.read()
                assert response.status == 201, (response.status, answer[:300])

        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates[kind] = args.streams * args.batches * args.size / (time.perf_counter() - started)
    return rates


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=2, help="connections side by side")
    parser.add_argument(
        "--without-log",
        action="store_true",
        help="book without keeping the transparency log's tiles (to measure what they cost)",
    )
    args = parser.parse_args()
    token = setup()
    connection.close()
    env = {
        **os.environ,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
    }
    options = ["-c", "bench/gunicorn_without_log.py"] if args.without_log else []
    server = subprocess.Popen(
        gunicorn_command(PORT, 2, "--timeout", "120", *options),
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request(
                    "GET", "/api/v1/funds"
                )
                break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
        post(conn, token, "/api/v1/ingest/liquidations", {"items": takeovers(999, 100)})  # warm-up
        cycle = (
            SettlementCycle.objects.filter(status="open")
            .order_by("starts_at")
            .values_list("id", flat=True)
            .first()
        )
        connection.close()
        results = {"takeovers": [], "profits": []}
        sent = []
        for batch in range(args.batches):
            sent.append({"items": takeovers(batch, args.size)})
            seconds, status, answer = post(conn, token, "/api/v1/ingest/liquidations", sent[-1])
            assert status == 201 and answer["created"] == args.size, (status, str(answer)[:300])
            results["takeovers"].append(seconds)
            seconds, status, answer = post(
                conn,
                token,
                "/api/v1/ingest/position-profits",
                {"cycle": cycle, "items": profits(batch, args.size)},
            )
            assert status == 201 and answer["created"] == args.size, (status, str(answer)[:300])
            results["profits"].append(seconds)
        seconds, status, answer = post(
            conn, token, "/api/v1/ingest/liquidations", sent[0]
        )  # the same batch again
        assert status == 200 and answer["existing"] == args.size, (status, str(answer)[:400])
        results["replay"] = [seconds]
        results["streams"] = args.streams
        results["concurrent"] = concurrent(token, cycle, args)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    records = FundRecord.objects.filter(takeover__external_id__startswith="bench-0-").count()
    floor = copy_floor(args.size, records, runs=max(args.batches, 3))
    kept = LogTile.objects.filter(level=0).aggregate(leaves=Sum("width"))["leaves"] or 0
    assert bool(kept) != args.without_log, f"{kept} leaves kept, without_log={args.without_log}"
    print(
        json.dumps(
            {"size": args.size, "records": records, **results, "floor": floor, "leaves": kept}
        )
    )


if __name__ == "__main__":
    main()
