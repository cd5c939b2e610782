"""Bounded load run on loopback (bench/run.py drives it): readers keep the public pages and the
API busy while a large settlement and the trading engine's ingestion run at the same time, and
checkers make sure nobody ever sees a half-settled cycle or a balance the ledger does not hold.

1. Prepares a fresh database: a USDT fund with eight days of history (hourly takeovers, settled
   daily cycles, a few thousand records), one closed, due cycle with a loss and N profitable
   positions (COPY), the current cycle open, and the trading engine's API token.
2. Starts gunicorn (4 workers) on a free port of 127.0.0.1.
3. Readers (threads, one request at a time each) rotate over the overview, the fund page, the
   cycle list, the big cycle's report and the public API; meanwhile the big cycle is settled in a
   separate process and batches of liquidation takeovers are posted through the API.
4. Checkers poll during the whole run: the big cycle's API report is either not settled (no
   figures) or settled with F + backstop + Σ a + uncovered = L and every participant; its HTML
   report never shows "settled" without its figures; the fund's balance is never negative and
   equals the newest record's balance_after whenever both answers show the same chain head.
5. Readers stop when the settlement and the ingestion are done (plus a tail), or at a hard cap.

Every non-2xx answer and every connection error counts; so does every violation. Any of them
makes this script exit 1 with a message naming them (the JSON result is still the last line of
stdout). gunicorn and the settling process are always stopped.

    DATABASE_URL=postgres://… python bench/load.py \\
        [--positions 1000000] [--batches 10] [--size 5000]
    python bench/load.py settle CYCLE_ID   # (internal) the settling process
"""

import argparse
import http.client
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_redis() -> str:
    """The web processes' cache, shared as in production (BENCH_REDIS_URL; emptied first)."""
    import redis

    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    redis.Redis.from_url(url).flushdb()
    return url


RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402
from django.utils import timezone  # noqa: E402
from ingest import takeovers  # noqa: E402  (bench/ingest.py: the same engine batches)
from webserver import gunicorn_command  # noqa: E402  (bench/webserver.py)

from fund.models import (  # noqa: E402
    Apportionment,
    Contract,
    Fund,
    FundRecord,
    LiquidationTakeover,
    PositionProfit,
    SettlementCycle,
)
from fund.services.bulk import insert_rows  # noqa: E402
from fund.services.cycles import cycles_close_due  # noqa: E402
from fund.services.ledger import fund_deposit  # noqa: E402
from fund.services.liquidations import TakeoverInput, liquidations_record  # noqa: E402
from fund.services.settlement import cycle_loss_units, settlement_cycle_settle  # noqa: E402
from statements.models import ApiToken, Asset, TraderAccount  # noqa: E402
from statements.money import format_units  # noqa: E402
from statements.services import api_token_create  # noqa: E402

HISTORY_DAYS = 7  # settled daily cycles before the big one
TAKEOVERS_PER_HOUR = 20  # history: ~3,800 takeovers, ~3,000 profit records
POSITIONS_PER_CYCLE = 2_000  # history: profitable positions of each settled cycle
ACCOUNTS = 20_000
PRECISION = 8
NOT_SETTLED = ("open", "closed", "settling")
FIGURES = (
    "loss",
    "balance_before",
    "fund_share",
    "users_share",
    "total_profit",
    "participants_profit",
    "threshold_profit",
    "apportioned",
    "backstop",
    "uncovered",
)


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- preparation (in this process) ------------------------------------------------------------


def _history_takeovers(rng: random.Random, day: int, hour: int, start) -> list[TakeoverInput]:
    """An hour's closed takeovers: mostly small profits for the fund, some margin-call losses."""
    items = []
    for i in range(TAKEOVERS_PER_HOUR):
        closed = start + timedelta(seconds=rng.randrange(1, 3590))
        price, margin = 60_000 + rng.randrange(-3000, 3000), rng.randrange(5, 400)
        side = rng.choice(("long", "short"))
        # A move against the position smaller than its margin is a profit; a larger one a loss.
        move = rng.randrange(0, margin) if rng.random() < 0.8 else margin + rng.randrange(1, 600)
        close = price - move if side == "long" else price + move
        items.append(
            TakeoverInput(
                external_id=f"hist-{day}-{hour}-{i}",
                contract="BTCUSDT",
                side=side,
                quantity="1",
                takeover_price=str(price),
                close_price=str(close),
                remaining_margin=f"{margin}.{rng.randrange(100):02d}",
                taken_over_at=closed - timedelta(seconds=1),
                closed_at=closed,
            )
        )
    return items


def _profits(
    cycle_id: int,
    count: int,
    first_position: int,
    contract_id: int,
    account_ids: list[int],
    rng,
    received,
) -> None:
    """`count` profitable positions for a cycle, COPYed (PostgreSQL) like bench/settle.py does."""
    with transaction.atomic():
        insert_rows(
            PositionProfit,
            # Each with its salt (16 random bytes), as the intake gives every position profit.
            [
                "cycle_id",
                "position_id",
                "account_id",
                "contract_id",
                "profit_units",
                "salt",
                "received_at",
            ],
            (
                (
                    cycle_id,
                    first_position + i,
                    account_ids[i % len(account_ids)],
                    contract_id,
                    int(rng.paretovariate(1.2) * 10**9) + rng.randrange(1, 10**6),
                    os.urandom(16),
                    received,
                )
                for i in range(count)
            ),
        )


def prepare(n: int) -> dict:
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    rng = random.Random(n)
    now = timezone.now()
    day = timedelta(days=1)
    # Cycles 0 … HISTORY_DAYS-1 get settled, cycle HISTORY_DAYS is the big one (it ended an hour
    # or more ago, so its grace period is over), the next one holds now.
    anchor = now.replace(minute=0, second=0, microsecond=0) - timedelta(
        days=HISTORY_DAYS + 1, hours=1
    )
    asset = Asset.objects.create(code="USDT", name="Tether USD", precision=PRECISION)
    # Every profitable position participates (screening ratio 1): the most rows a settlement writes.
    Fund.objects.create(asset=asset, anchor=anchor, screening_ratio=Decimal(1))
    btc = Contract.objects.create(symbol="BTCUSDT", margin_asset=asset, kind="linear")
    Contract.objects.create(symbol="ETHUSDT", margin_asset=asset, kind="linear", multiplier="0.01")
    TraderAccount.objects.bulk_create(
        [TraderAccount(external_id=f"L-{i:06d}") for i in range(ACCOUNTS)], batch_size=5000
    )
    account_ids = list(TraderAccount.objects.order_by("id").values_list("id", flat=True))
    fund_deposit(
        asset_code="USDT", amount="50000000", reason="benchmark", now=anchor + timedelta(minutes=1)
    )

    for d in range(HISTORY_DAYS + 1):
        start = anchor + d * day
        for hour in range(24):
            hour_start = start + timedelta(hours=hour)
            liquidations_record(
                items=_history_takeovers(rng, d, hour, hour_start),
                now=hour_start + timedelta(seconds=3595),
            )
        cycle = SettlementCycle.objects.get(starts_at=start)
        if d < HISTORY_DAYS:
            _profits(
                cycle.id,
                POSITIONS_PER_CYCLE,
                1,
                btc.id,
                account_ids,
                rng,
                start + timedelta(hours=23),
            )
            cycles_close_due(now=cycle.settle_after, claim=False)
            assert settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after).posted

    big = SettlementCycle.objects.get(starts_at=anchor + HISTORY_DAYS * day)
    # The big cycle's margin-call loss (2,000,000 USDT) and its N profitable positions.
    closed = big.starts_at + timedelta(hours=23, minutes=30)
    liquidations_record(
        items=[
            TakeoverInput(
                external_id="bench-loss",
                contract="BTCUSDT",
                side="long",
                quantity="1",
                takeover_price="3000000",
                close_price="1000000",
                remaining_margin="0",
                taken_over_at=closed - timedelta(seconds=5),
                closed_at=closed,
            )
        ],
        now=closed + timedelta(seconds=1),
    )
    _profits(
        big.id,
        n,
        10_000_000,
        btc.id,
        account_ids,
        rng,
        big.starts_at + timedelta(hours=23, minutes=50),
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    cycles_close_due(now=timezone.now(), claim=False)  # closes the big cycle, opens the current one
    big.refresh_from_db()
    assert big.status == SettlementCycle.Status.CLOSED and big.settle_after <= timezone.now(), (
        big.status
    )
    current = SettlementCycle.objects.filter(status="open").order_by("starts_at").first()
    assert current is not None and current.starts_at <= timezone.now() < current.ends_at

    from django.contrib.auth import get_user_model

    engine = get_user_model().objects.create(username="trading-engine")
    token = api_token_create(user=engine, kind=ApiToken.Kind.ENGINE, name="bench load")[1]
    return {
        "cycle": big.id,
        "loss_units": cycle_loss_units(big),
        "participants": PositionProfit.objects.filter(cycle=big, profit_units__gt=0).count(),
        "records": FundRecord.objects.count(),
        "settled_cycles": SettlementCycle.objects.filter(status="settled").count(),
        "token": token,
        "seconds": time.perf_counter() - started,
    }


# --- HTTP -------------------------------------------------------------------------------------


class Client:
    """GETs and POSTs on 127.0.0.1:port, one connection per request (gunicorn's sync workers
    close it anyway)."""

    def __init__(self, port: int, timeout: float):
        self.port, self.timeout = port, timeout

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body, headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


class Tally:
    """Errors of one kind of client: non-2xx answers by status, connection errors by type, and a
    few samples of each for the report."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.exceptions: Counter = Counter()
        self.samples: list[str] = []

    def status(self, where: str, status: int, body: bytes) -> None:
        with self.lock:
            self.statuses[status] += 1
            if len(self.samples) < 10:
                self.samples.append(f"{where}: HTTP {status}: {body[:300]!r}")

    def exception(self, where: str, exc: BaseException) -> None:
        with self.lock:
            self.exceptions[type(exc).__name__] += 1
            if len(self.samples) < 10:
                self.samples.append(f"{where}: {type(exc).__name__}: {exc}")

    @property
    def count(self) -> int:
        return sum(self.statuses.values()) + sum(self.exceptions.values())

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "connection_errors": dict(self.exceptions),
            "samples": self.samples,
        }


def reader(
    client: Client,
    urls: list[tuple[str, str]],
    offset: int,
    stop: threading.Event,
    out: list,
    errors: Tally,
) -> None:
    """Requests the URLs in turn, one at a time, until told to stop; records (url index, start,
    seconds) of every 2xx answer."""
    i = offset
    while not stop.is_set():
        index = i % len(urls)
        i += 1
        started = time.perf_counter()
        try:
            status, body = client.request("GET", urls[index][1])
        except Exception as exc:
            errors.exception(urls[index][1], exc)
            continue
        if 200 <= status < 300:
            out.append((index, started, time.perf_counter() - started))
        else:
            errors.status(urls[index][1], status, body)


class Checks:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.violations: list[str] = []
        self.violation_count = 0
        self.seen_statuses: list[
            str
        ] = []  # the big cycle's API status, in the order seen (changes only)

    def done(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def violation(self, what: str, message: str) -> None:
        with self.lock:
            self.violation_count += 1
            if len(self.violations) < 20:
                self.violations.append(f"{what}: {message}")
        log(f"VIOLATION {what}: {message}")


def _d(value) -> Decimal:
    return Decimal(value)  # amounts are decimal strings: never floats


def check_cycle_api(client: Client, prep: dict, checks: Checks, errors: Tally) -> None:
    path = f"/api/v1/cycles/{prep['cycle']}"
    status, body = client.request("GET", path)
    if status != 200:
        errors.status(path, status, body)
        return
    cycle = json.loads(body)
    state = cycle["status"]
    if not checks.seen_statuses or checks.seen_statuses[-1] != state:
        if "settled" in checks.seen_statuses and state != "settled":
            checks.violation(
                "cycle api", f"the cycle was reported settled and then {state!r} again"
            )
        checks.seen_statuses.append(state)
    if state in NOT_SETTLED:
        published = {name: cycle[name] for name in FIGURES if cycle.get(name) is not None}
        if published or cycle.get("participant_count") or cycle.get("settled_at"):
            checks.violation(
                "cycle api",
                f"status {state!r} with figures published: {published}, "
                f"participant_count={cycle.get('participant_count')}, "
                f"settled_at={cycle.get('settled_at')}",
            )
    elif state == "settled":
        missing = [name for name in FIGURES if cycle.get(name) is None]
        if missing or cycle.get("settled_at") is None:
            checks.violation(
                "cycle api", f"settled with figures missing: {missing or 'settled_at'}"
            )
        else:
            loss = _d(cycle["loss"])
            total = (
                _d(cycle["fund_share"])
                + _d(cycle["backstop"])
                + _d(cycle["apportioned"])
                + _d(cycle["uncovered"])
            )
            expected_loss = _d(format_units(prep["loss_units"], PRECISION))
            if total != loss:
                checks.violation(
                    "cycle api", f"F + backstop + apportioned + uncovered = {total} != loss {loss}"
                )
            if loss != expected_loss:
                checks.violation(
                    "cycle api", f"loss {loss} != the cycle's system losses {expected_loss}"
                )
            if _d(cycle["users_share"]) != loss - _d(cycle["fund_share"]):
                checks.violation(
                    "cycle api", f"users_share {cycle['users_share']} != loss - fund_share"
                )
            if (
                cycle.get("participant_count") != prep["participants"]
                or cycle.get("profitable_count") != prep["participants"]
            ):
                checks.violation(
                    "cycle api",
                    f"participant_count {cycle.get('participant_count')} / profitable_count "
                    f"{cycle.get('profitable_count')}, expected {prep['participants']}",
                )
    else:
        checks.violation(
            "cycle api", f"unexpected status {state!r} (error: {cycle.get('error', '')!r})"
        )
    checks.done("cycle api")


def check_balance(client: Client, checks: Checks, errors: Tally) -> None:
    """The fund's balance and chain head come from one row; the newest record from another
    request. When the record's hash is the chain head they describe the same moment, so the
    balance must be that record's balance_after; otherwise a record was appended in between
    (counted as raced) and only signs are checked."""
    results = []
    for path in ("/api/v1/funds/USDT", "/api/v1/funds/USDT/records?page_size=1"):
        status, body = client.request("GET", path)
        if status != 200:
            errors.status(path, status, body)
            return
        results.append(json.loads(body))
    fund, records = results
    newest = records["results"][0]
    balance, after = _d(fund["balance"]), _d(newest["balance_after"])
    if balance < 0 or after < 0:
        checks.violation("balance", f"negative: balance {balance}, newest balance_after {after}")
    if newest["hash"] == fund["chain_head"]:
        if balance != after:
            checks.violation(
                "balance",
                f"balance {balance} != balance_after {after} of record #{newest['seq']}, "
                "the chain head of the same answer",
            )
        checks.done("balance (same head)")
    else:
        checks.done("balance (raced)")


STATUS_RE = re.compile(r'<p class="status status-([a-z]+)"')
CHECK_RE = re.compile(r"Check: F \+ backstop \+ Σ a \+ uncovered = ([^=<]+?) = L")
PARTICIPANTS_RE = re.compile(r"<td class=\"num\">(\d+) participants?</td>")
CELL_RE = re.compile(r'<td class="num[^"]*">([^<]*)</td>')


def check_cycle_page(client: Client, prep: dict, checks: Checks, errors: Tally) -> None:
    path = f"/cycles/{prep['cycle']}/"
    status, body = client.request("GET", path)
    if status != 200:
        errors.status(path, status, body)
        return
    html = body.decode()
    found = STATUS_RE.search(html)
    state = found.group(1) if found else None
    shared = (
        "How the cycle's losses were shared" in html
        or "How the cycle&#x27;s losses were shared" in html
    )
    if state in NOT_SETTLED:
        if shared or "Its figures are published when it is settled" not in html:
            checks.violation(
                "cycle page",
                f"status {state!r} but the page shows figures "
                "(or lacks the 'not settled yet' note)",
            )
    elif state == "settled":
        start = html.find('<table class="report">')
        report = html[start : html.find("</table>", start)] if shared and start >= 0 else ""
        cells = CELL_RE.findall(report)
        total = CHECK_RE.search(html)
        participants = PARTICIPANTS_RE.search(report)
        problems = []
        if not shared:
            problems.append("no report table")
        if len(cells) < 11 or any(not c.strip() or c.strip() in ("–", "None") for c in cells):
            problems.append(f"figures missing: {cells}")
        expected = _d(format_units(prep["loss_units"], PRECISION))
        if total is None or _d(re.sub(r"[^0-9.]", "", total.group(1))) != expected:
            problems.append(
                f"check line shows {total.group(1) if total else None!r}, expected L = {expected}"
            )
        if participants is None or int(participants.group(1)) != prep["participants"]:
            problems.append(
                f"participants {participants.group(1) if participants else None}, "
                f"expected {prep['participants']}"
            )
        if problems:
            checks.violation("cycle page", "settled with " + "; ".join(problems))
    else:
        checks.violation("cycle page", f"unexpected status marker {state!r}")
    checks.done("cycle page")


def checker(
    kind: str,
    client: Client,
    prep: dict,
    stop: threading.Event,
    checks: Checks,
    errors: Tally,
    pause: float,
) -> None:
    while not stop.is_set():
        try:
            if kind == "cycle api":
                check_cycle_api(client, prep, checks, errors)
            elif kind == "balance":
                check_balance(client, checks, errors)
            else:
                check_cycle_page(client, prep, checks, errors)
        except (OSError, http.client.HTTPException) as exc:
            errors.exception(f"checker {kind}", exc)
        except Exception as exc:
            checks.violation(f"checker {kind}", f"{type(exc).__name__}: {exc}")
        stop.wait(pause)


def ingest(client: Client, token: str, batches: int, size: int, out: dict, errors: Tally) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    out["started"] = time.perf_counter()
    for batch in range(batches):
        payload = json.dumps({"items": takeovers(batch, size, prefix="load")}).encode()
        started = time.perf_counter()
        try:
            status, body = client.request("POST", "/api/v1/ingest/liquidations", payload, headers)
        except Exception as exc:
            errors.exception(f"ingest batch {batch}", exc)
            continue
        seconds = time.perf_counter() - started
        if status != 201:
            errors.status(f"ingest batch {batch}", status, body)
            continue
        try:
            answer = json.loads(body)
        except ValueError as exc:
            errors.exception(f"ingest batch {batch}", exc)
            continue
        if answer.get("created") != size:
            errors.status(
                f"ingest batch {batch} (created {answer.get('created')} of {size})", status, body
            )
            continue
        out["seconds"].append(seconds)
        out["items"] += size
    out["finished"] = time.perf_counter()


# --- the run ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


def stop_process(process: subprocess.Popen, name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop after SIGTERM: killing it")
        process.kill()
        process.wait(timeout=30)


def final_checks(client: Client, prep: dict, ingested: int, checks: Checks, errors: Tally) -> dict:
    """After every write: the API, the ledger (SQL) and the big cycle's rows agree."""
    fund = Fund.objects.get(asset__code="USDT")
    totals = FundRecord.objects.filter(fund=fund).aggregate(total=Sum("amount_units"))
    newest = (
        FundRecord.objects.filter(fund=fund)
        .order_by("-seq")
        .values_list("balance_after_units", flat=True)
        .first()
    )
    if not fund.balance_units == totals["total"] == newest:
        checks.violation(
            "final",
            f"fund balance {fund.balance_units}, sum of records {totals['total']}, "
            f"newest balance_after {newest}",
        )
    status, body = client.request("GET", "/api/v1/funds/USDT")
    if status != 200:
        errors.status("final /api/v1/funds/USDT", status, body)
    elif _d(json.loads(body)["balance"]) != _d(format_units(fund.balance_units, PRECISION)):
        checks.violation(
            "final",
            f"API balance {json.loads(body)['balance']} != ledger {fund.balance_units} units",
        )
    cycle = SettlementCycle.objects.get(pk=prep["cycle"])
    rows = Apportionment.objects.filter(cycle=cycle).aggregate(
        count=Count("pk"), total=Sum("amount_units")
    )
    if (
        cycle.status != "settled"
        or rows["count"] != prep["participants"]
        or rows["total"] != cycle.apportioned_units
    ):
        checks.violation(
            "final",
            f"big cycle {cycle.status}: {rows['count']} apportionments totalling {rows['total']}, "
            f"expected {prep['participants']} totalling {cycle.apportioned_units}",
        )
    loaded = LiquidationTakeover.objects.filter(external_id__startswith="load-").count()
    if loaded != ingested:
        checks.violation(
            "final", f"{loaded} takeovers booked from the API, {ingested} acknowledged"
        )
    checks.done("final")
    # The cached fund page, read through every gunicorn worker: the shared cache must show the
    # balance the ledger holds now.
    shown = []
    for _ in range(8):
        status, body = client.request("GET", "/funds/USDT/")
        found = re.search(r'data-balance="USDT">([^<]+)<', body.decode()) if status == 200 else None
        shown.append(_d(re.sub(r"[^0-9.]", "", found.group(1))) if found else None)
    expected = _d(format_units(fund.balance_units, PRECISION))
    if any(value != expected for value in shown):
        checks.violation("final", f"/funds/USDT/ showed {shown}, the ledger holds {expected}")
    return {
        "balance": str(expected),
        "records": FundRecord.objects.filter(fund=fund).count(),
        "fund_page_stale": sum(1 for value in shown if value != expected),
        "fund_page_reads": len(shown),
    }


def run(args) -> dict:
    log(
        f"preparing: {HISTORY_DAYS} days of history and a closed cycle "
        f"with {args.positions:,} positions …"
    )
    prep = prepare(args.positions)
    log(
        f"prepared in {prep['seconds']:.1f} s: cycle {prep['cycle']}, {prep['records']:,} records, "
        f"{prep['settled_cycles']} settled cycles"
    )
    connection.close()

    port = free_port()
    RESULTS.mkdir(parents=True, exist_ok=True)
    server_log_path = RESULTS / "load-gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        "REDIS_URL": bench_redis(),
        "API_ANON_RATE": "100000000/minute",
    }
    client = Client(port, timeout=args.request_timeout)
    urls = [
        ("/", "/"),
        ("/funds/USDT/", "/funds/USDT/"),
        ("/cycles/", "/cycles/"),
        ("/cycles/<big>/", f"/cycles/{prep['cycle']}/"),
        ("/api/v1/funds/USDT", "/api/v1/funds/USDT"),
        ("/api/v1/funds/USDT/records", "/api/v1/funds/USDT/records?page_size=50"),
        ("/api/v1/cycles", "/api/v1/cycles?asset=USDT&page_size=20"),
        ("/api/v1/cycles/<big>", f"/api/v1/cycles/{prep['cycle']}"),
    ]
    stop = threading.Event()
    checks, reader_errors, checker_errors, ingest_errors = Checks(), Tally(), Tally(), Tally()
    samples: list[list] = [[] for _ in range(args.readers)]
    ingestion = {"seconds": [], "items": 0, "started": None, "finished": None}
    settle_out = tempfile.TemporaryFile("w+")
    settle_err = tempfile.TemporaryFile("w+")
    problems: list[str] = []
    settlement: dict = {}
    threads: list[threading.Thread] = []
    settler = None
    with open(server_log_path, "w") as server_log:
        server = subprocess.Popen(
            gunicorn_command(port, args.workers, "--timeout", str(args.worker_timeout)),
            cwd=ROOT,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(300):
                try:
                    if Client(port, 1).request("GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"gunicorn did not answer on port {port}; see {server_log_path}")
            for _, path in urls:  # every worker imports and warms up once, outside the figures
                for _ in range(args.workers * 2):
                    client.request("GET", path)

            threads = [
                threading.Thread(
                    target=reader,
                    args=(client, urls, i, stop, samples[i], reader_errors),
                    daemon=True,
                )
                for i in range(args.readers)
            ]
            threads += [
                threading.Thread(
                    target=checker,
                    args=(kind, client, prep, stop, checks, checker_errors, 0.05),
                    daemon=True,
                )
                for kind in ("cycle api", "balance", "cycle page")
            ]
            readers_started = time.perf_counter()
            deadline = readers_started + args.max_seconds
            for thread in threads:
                thread.start()
            time.sleep(
                args.lead
            )  # readers alone first: the checkers see the cycle before it settles

            log(
                f"settling cycle {prep['cycle']} in a separate process "
                f"and posting {args.batches} × {args.size:,} takeovers …"
            )
            load_started = time.perf_counter()
            settler = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "settle", str(prep["cycle"])],
                # the same cache as the web processes, as a production worker has
                cwd=ROOT,
                env={**os.environ, "REDIS_URL": env["REDIS_URL"]},
                stdout=settle_out,
                stderr=settle_err,
            )
            ingester = threading.Thread(
                target=ingest,
                args=(client, prep["token"], args.batches, args.size, ingestion, ingest_errors),
                daemon=True,
            )
            ingester.start()
            settle_wall = None
            while time.perf_counter() < deadline:
                if settle_wall is None and settler.poll() is not None:
                    settle_wall = time.perf_counter() - load_started
                if settle_wall is not None and not ingester.is_alive():
                    break
                time.sleep(0.05)
            else:
                problems.append(
                    "hard cap: the settlement or the ingestion was still running "
                    f"after {args.max_seconds:.0f} s"
                )
            load_finished = time.perf_counter()
            if not problems:
                stop.wait(
                    min(args.tail, max(0.0, deadline - time.perf_counter()))
                )  # readers a little longer
            stop.set()
            readers_stopped = time.perf_counter()
            for thread in threads:
                thread.join(timeout=args.request_timeout + 5)
            if any(thread.is_alive() for thread in threads):
                problems.append("a reader or checker did not stop in time")

            if settler.poll() is None:
                stop_process(settler, "the settling process")
            settle_out.seek(0)
            settle_err.seek(0)
            out_lines = settle_out.read().strip().splitlines()
            if settler.returncode == 0 and out_lines:
                settlement = json.loads(out_lines[-1])
                settlement["wall_seconds"] = settle_wall
            else:
                problems.append(
                    f"the settling process failed (exit {settler.returncode}):\n"
                    f"{settle_err.read()[-3000:]}"
                )
            if not problems:
                final = final_checks(client, prep, ingestion["items"], checks, checker_errors)
            else:
                final = {}
        finally:
            stop.set()
            if settler is not None:
                stop_process(settler, "the settling process")
            stop_process(server, "gunicorn")

    # --- figures ---
    window = readers_stopped - readers_started
    per_url = {}
    all_latencies = []
    settle_end = load_started + (settle_wall or 0)
    for name_index, (name, _) in enumerate(urls):
        latencies = [s for rows in samples for (i, _, s) in rows if i == name_index]
        all_latencies += latencies
        per_url[name] = {
            "requests": len(latencies),
            "rps": len(latencies) / window,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies, default=0) * 1000,
        }
    during = sum(
        1 for rows in samples for (_, started, _) in rows if load_started <= started < settle_end
    )
    ingest_seconds = (ingestion["finished"] or load_finished) - (
        ingestion["started"] or load_started
    )
    result = {
        "positions": args.positions,
        "prepare_seconds": prep["seconds"],
        "history_records": prep["records"],
        "readers": args.readers,
        "workers": args.workers,
        "window_seconds": window,
        "requests": len(all_latencies),
        "rps": len(all_latencies) / window,
        "rps_during_settlement": during / settle_wall if settle_wall else None,
        "p50_ms": percentile(all_latencies, 50) * 1000,
        "p99_ms": percentile(all_latencies, 99) * 1000,
        "max_ms": max(all_latencies, default=0) * 1000,
        "per_url": per_url,
        "reader_errors": reader_errors.as_dict(),
        "checker_errors": checker_errors.as_dict(),
        "ingest_errors": ingest_errors.as_dict(),
        "errors": reader_errors.count + checker_errors.count + ingest_errors.count,
        "settlement": settlement,
        "ingest": {
            "items": ingestion["items"],
            "batches": len(ingestion["seconds"]),
            "seconds": ingest_seconds,
            "items_per_s": ingestion["items"] / ingest_seconds if ingest_seconds > 0 else 0,
            "batch_seconds": ingestion["seconds"],
        },
        "checks": dict(checks.counts),
        "checks_total": sum(checks.counts.values()),
        "checks_per_s": sum(checks.counts.values()) / window,
        "cycle_statuses_seen": checks.seen_statuses,
        "violations": checks.violation_count,
        "violation_samples": checks.violations,
        "final": final,
        "server_log": str(server_log_path),
        "problems": problems,
    }
    if result["errors"]:
        problems.append(
            f"{result['errors']} failed requests (non-2xx or connection errors): readers "
            f"{reader_errors.as_dict()}, checkers {checker_errors.as_dict()}, "
            f"ingestion {ingest_errors.as_dict()}"
        )
    if checks.violation_count:
        problems.append(
            f"{checks.violation_count} consistency violations: " + " | ".join(checks.violations)
        )
    if ingestion["items"] != args.batches * args.size:
        problems.append(
            f"ingestion: {ingestion['items']:,} of {args.batches * args.size:,} "
            "takeovers acknowledged"
        )
    if "settled" not in checks.seen_statuses:
        problems.append("the checkers never saw the big cycle settled")
    if not any(s in checks.seen_statuses for s in NOT_SETTLED):
        problems.append("the checkers never saw the big cycle before it settled (increase --lead)")
    result["ok"] = not problems
    return result


def settle_child(cycle_id: int) -> dict:
    """The settling process: settles the big cycle now; seconds and peak memory as JSON."""
    before = peak_mib()
    started = time.perf_counter()
    outcome = settlement_cycle_settle(cycle_id=cycle_id)
    seconds = time.perf_counter() - started
    assert outcome.posted, "the cycle was settled already"
    return {
        "seconds": seconds,
        "participants": outcome.cycle.participant_count,
        "rss_before_mib": before,
        "peak_rss_mib": peak_mib(),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "settle":
        print(json.dumps(settle_child(int(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--positions", type=int, default=1_000_000, help="profitable positions of the big cycle"
    )
    parser.add_argument(
        "--batches", type=int, default=10, help="takeover batches posted through the API"
    )
    parser.add_argument("--size", type=int, default=5_000, help="takeovers per batch")
    parser.add_argument("--readers", type=int, default=16, help="concurrent readers (threads)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument(
        "--lead", type=float, default=3.0, help="seconds of readers alone before the writes start"
    )
    parser.add_argument(
        "--tail", type=float, default=2.0, help="seconds of readers after the writes are done"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="hard cap on the readers' run"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=120.0, help="client timeout per request"
    )
    # An ingestion batch waits for the fund's row lock while the settlement posts (about a minute
    # for 1,000,000 positions on 2 busy cores): gunicorn's default of 30 s would kill that worker.
    parser.add_argument(
        "--worker-timeout",
        type=int,
        default=120,
        help="gunicorn's worker timeout (its default: 30)",
    )
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result))
    if not result["ok"]:
        sys.exit(
            "bench/load.py: FAILED\n"
            + "\n".join(f"- {p}" for p in result["problems"])
            + f"\n(gunicorn's log: {result['server_log']})"
        )


if __name__ == "__main__":
    main()
