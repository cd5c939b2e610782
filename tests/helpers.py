"""Building blocks for tests: book losses, profits and balances through the real services."""

import contextlib
import itertools
import json
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import batched

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from fund.services.ledger import fund_deposit
from fund.services.liquidations import (
    MAX_BATCH,
    PositionProfitInput,
    TakeoverInput,
    liquidations_record,
    position_profits_record,
)
from statements.services import api_token_create
from tests.factories import ANCHOR

_ids = itertools.count(1)
OPEN_PRICE = Decimal(1_000_000)
LARGE_CYCLE_POSITIONS = 40_000  # the positions of tests/fund/conftest.py's large_cycle
# The API's actors, each a fixture of tests/fund/api/conftest.py.
ACTORS = ["anonymous", "trader", "other_trader", "engine", "staff", "settlement_staff"]


def at(day: int, hour: float = 0) -> datetime:
    """A moment of the test funds' daily cycles: `day` days and `hour` hours after their anchor."""
    return ANCHOR + timedelta(days=day, hours=hour)


def client_for(user=None, token_kind=None) -> APIClient:
    """An API client for the user: with a fresh API token of that kind, or logged in."""
    client = APIClient()
    if token_kind:
        _, token = api_token_create(user=user, kind=token_kind, name="test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    elif user is not None:
        client.force_login(user)
    return client


def book_loss(contract, loss, closed_at, *, external_id=None):
    """A long taken over at 1,000,000 and closed lower, with no margin left: a loss of `loss`."""
    loss = Decimal(loss)
    item = TakeoverInput(
        external_id=external_id or f"loss-{next(_ids)}",
        contract=contract.symbol,
        side="long",
        quantity="1",
        takeover_price=OPEN_PRICE,
        close_price=OPEN_PRICE - loss,
        remaining_margin="0",
        taken_over_at=closed_at - timedelta(minutes=1),
        closed_at=closed_at,
    )
    return liquidations_record(items=[item]).rows[0]


def book_profit(contract, profit, closed_at, *, external_id=None):
    """A takeover that closed with `profit` of remaining margin and a flat price."""
    item = TakeoverInput(
        external_id=external_id or f"profit-{next(_ids)}",
        contract=contract.symbol,
        side="short",
        quantity="1",
        takeover_price="100",
        close_price="100",
        remaining_margin=str(profit),
        taken_over_at=closed_at - timedelta(minutes=1),
        closed_at=closed_at,
    )
    return liquidations_record(items=[item]).rows[0]


def report_profits(cycle, contract, profits: dict[int, str], account_prefix="acct"):
    """Position profits {position id: profit} for a cycle, one account per position."""
    items = [
        PositionProfitInput(
            position_id=pid,
            account=f"{account_prefix}-{pid}",
            contract=contract.symbol,
            profit=str(p),
        )
        for pid, p in profits.items()
    ]
    return position_profits_record(cycle_id=cycle.id, items=items)


def report_many_profits(cycle, contract, profits: dict[int, str]):
    """More position profits than one batch may carry, reported batch by batch."""
    for batch in batched(profits.items(), MAX_BATCH):
        report_profits(cycle, contract, dict(batch))


def deposit(fund, amount, reason="seed money"):
    return fund_deposit(asset_code=fund.asset.code, amount=str(amount), reason=reason)


def run_together(*targets):
    """Runs each target in its own thread (each with its own database connection), at once;
    returns their results and fails the test if any raised."""
    from django.db import connection

    barrier = threading.Barrier(len(targets))
    results, errors = [], []

    def worker(target):
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def assert_books_hold(fund) -> None:
    """The money invariants of docs/rules.md §2 and §6, read back from the database after whatever
    happened: the balance is the sum of the records and never went below zero, the hash chain is
    intact, the hourly balance rows the charts read agree with the ledger; every settled cycle has
    F + backstop + Σ a_i + uncovered = L, exactly one apportionment and one statement per
    participant (0 <= a_i <= p_i, the statement of -a_i for the position's account), one coverage
    record for what the fund paid, and the Merkle root it published; an unsettled cycle has none
    of these."""
    from django.db.models import Count, F, Min, Sum

    from fund.computation import fund_share_of
    from fund.models import Apportionment, FundRecord, SettlementCycle
    from fund.services.verify import cycles_verify, ledger_verify
    from statements.models import Statement

    fund.refresh_from_db()
    records = FundRecord.objects.filter(fund=fund)
    totals = records.aggregate(
        total=Sum("amount_units"), lowest=Min("balance_after_units"), n=Count("id")
    )
    assert fund.balance_units == (totals["total"] or 0), "the balance is not the sum of the records"
    assert fund.balance_units >= 0 and (totals["lowest"] or 0) >= 0, "the balance went below zero"
    chain = ledger_verify(fund=fund)
    assert chain.ok, chain.problem
    hours = list(fund.balance_hours.order_by("hour"))
    assert sum(h.records for h in hours) == totals["n"], "the hourly rows miss records"
    assert sum(h.inflow_units - h.outflow_units for h in hours) == fund.balance_units
    assert not hours or hours[-1].close_units == fund.balance_units
    assert all(a.close_units == b.open_units for a, b in zip(hours, hours[1:]))
    cycles = cycles_verify(fund=fund)
    assert cycles.ok, cycles.problem
    for cycle in SettlementCycle.objects.filter(fund=fund):
        coverage = list(
            records.filter(cycle=cycle, kind=FundRecord.Kind.SETTLEMENT_COVERAGE).values_list(
                "amount_units", flat=True
            )
        )
        apportionments = Apportionment.objects.filter(cycle=cycle)
        if cycle.status != SettlementCycle.Status.SETTLED:
            assert not coverage and not apportionments.exists(), (
                f"cycle {cycle.id} is {cycle.status} but has postings"
            )
            continue
        assert (
            cycle.fund_share_units
            + cycle.backstop_units
            + cycle.apportioned_units
            + cycle.uncovered_units
            == cycle.loss_units
        )
        # F = min(L × ratio, B) and backstop = min(U − Σ a, B − F) for the published balance B ...
        assert cycle.fund_share_units == fund_share_of(
            loss=cycle.loss_units, balance=cycle.balance_before_units, fund_ratio=cycle.fund_ratio
        ), f"cycle {cycle.id}: F"
        assert cycle.backstop_units == min(
            cycle.users_share_units - cycle.apportioned_units,
            cycle.balance_before_units - cycle.fund_share_units,
        ), f"cycle {cycle.id}: backstop"
        paid = cycle.fund_share_units + cycle.backstop_units
        assert coverage == ([-paid] if paid else []), (
            f"cycle {cycle.id}: coverage records {coverage}, fund paid {paid}"
        )
        if paid:  # ... and B is the balance the coverage record was taken from
            after = records.get(
                cycle=cycle, kind=FundRecord.Kind.SETTLEMENT_COVERAGE
            ).balance_after_units
            assert after + paid == cycle.balance_before_units, (
                f"cycle {cycle.id}: B is not the balance it was paid from"
            )
        booked = apportionments.aggregate(
            n=Count("id"),
            positions=Count("position", distinct=True),
            statements=Count("statement", distinct=True),
            total=Sum("amount_units"),
        )
        assert (
            booked["n"] == booked["positions"] == booked["statements"] == cycle.participant_count
        ), (cycle.id, booked)
        assert (booked["total"] or 0) == cycle.apportioned_units
        assert not apportionments.filter(amount_units__lt=0).exists(), f"cycle {cycle.id}: a_i < 0"
        assert not apportionments.filter(amount_units__gt=F("position__profit_units")).exists()
        assert not apportionments.exclude(statement__amount_units=-F("amount_units")).exists(), (
            f"cycle {cycle.id}: a statement is not -a_i"
        )
        assert not apportionments.exclude(statement__type=Statement.Type.APPORTIONMENT).exists()
        assert not apportionments.exclude(statement__account=F("position__account")).exists(), (
            f"cycle {cycle.id}: a statement for another account than the position's"
        )
        statements = Statement.objects.filter(apportionment__cycle=cycle)
        assert statements.aggregate(total=Sum("amount_units"))["total"] == (
            -cycle.apportioned_units if booked["n"] else None
        )
    orphans = Statement.objects.filter(
        type=Statement.Type.APPORTIONMENT, apportionment__isnull=True, asset=fund.asset_id
    )
    assert not orphans.exists(), "an apportionment statement without its apportionment"


def settle_in_background(cycle):
    """Starts settling the cycle on another connection; returns (thread, outcomes) once it writes
    its statements, i.e. in the middle of its posting."""
    from django.db import connection

    from fund.services.settlement import settlement_cycle_settle

    outcomes = []

    def run():
        try:
            outcomes.append(settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after))
        except Exception as exc:  # reported by the test
            outcomes.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE query LIKE 'COPY \"statements_statement\"%%' AND state = 'active' "
                "AND pid <> pg_backend_pid() AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return thread, outcomes
            time.sleep(0.001)
    raise AssertionError("the settlement never wrote its statements")


def takeover_item(external_id="lq-1", **overrides) -> dict:
    """One closed liquidation takeover as the engine sends it to the API: a long of 2 BTCUSDT
    taken over at 60,000 and closed a minute ago at 59,990.5 with 25 of margin left."""
    now = timezone.now()
    return {
        "external_id": external_id,
        "contract": "BTCUSDT",
        "side": "long",
        "quantity": "2",
        "takeover_price": "60000",
        "close_price": "59990.5",
        "remaining_margin": "25",
        "taken_over_at": (now - timedelta(minutes=2)).isoformat(),
        "closed_at": (now - timedelta(minutes=1)).isoformat(),
        **overrides,
    }


def tamper(sql, params=()):
    """Goes around the application, as an intruder with database access would (on PostgreSQL
    with the maintenance switch on, which the test database's owner may use)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL fund.allow_maintenance = 'on'")
        cursor.execute(sql, params)


def verify_ledger_output() -> str:
    """What `manage.py verify_ledger` prints, and "exit N" after it."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out, verbosity=0)
    except CommandError as exc:
        return out.getvalue() + f"exit {exc.returncode}"
    return out.getvalue() + "exit 0"


@contextlib.contextmanager
def held_in_another_session(sql: str, params=(), *, timeout: float = 60):
    """Runs `sql` in a transaction of another database session (a thread's own connection) and
    keeps that session, with what it holds, until the block ends; closing it then ends the
    session and releases everything it held (session-level advisory locks included)."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        from django.db import connection as own

        try:
            with transaction.atomic(), own.cursor() as cursor:
                cursor.execute(sql, params)
                taken.set()
                release.wait(timeout=timeout)
        finally:
            own.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(timeout=10)
    try:
        yield
    finally:
        release.set()
        thread.join(timeout=30)


def as_settled_before(cycle) -> None:
    """Makes a settled cycle look as one settled before the published inputs: its root of form 1,
    over the participants' apportionments with their position ids (fund/merkle.py)."""
    from fund.merkle import merkle_root
    from fund.proofs import cycle_apportionment_leaves

    root = merkle_root(cycle_apportionment_leaves(cycle=cycle))
    tamper(
        "UPDATE fund_settlementcycle SET root_format = 1, apportionment_root = %s WHERE id = %s",
        [root, cycle.id],
    )
    cycle.refresh_from_db()


class FakeSite:
    """An HTTP server answering each path from a dict: {path with query: (status, body)}."""

    def __init__(self):
        self.answers: dict[str, tuple[int, bytes]] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = answers.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, *paths: str) -> None:
        """What the real site answers at these paths now."""
        from django.test import Client

        client = Client()
        for path in paths:
            answer = client.get(path)
            body = b"".join(answer.streaming_content) if answer.streaming else answer.content
            self.answers[path] = (answer.status_code, body)

    def json(self, path: str):
        return json.loads(self.answers[path][1])

    def put_json(self, path: str, data) -> None:
        self.answers[path] = (200, json.dumps(data).encode())
