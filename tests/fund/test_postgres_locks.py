"""The books' locks on real PostgreSQL connections: one new takeover id raced for two funds, and
a lock held longer than BOOKS_LOCK_TIMEOUT (fund/services/locks.py)."""

import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.utils import timezone

import fund.services.liquidations as liquidations
from fund.models import (
    AdminAction,
    FundRecord,
    IdempotentRequest,
    LiquidationTakeover,
    SettlementCycle,
)
from fund.services.locks import (
    LOCK_NOT_AVAILABLE,
    BooksBusy,
    lock_cycle,
    lock_cycle_posting,
    lock_fund,
    lock_fund_by_id,
    lock_fund_of_cycle,
    lock_funds,
)
from statements.models import ApiToken
from tests.factories import AssetFactory, ContractFactory, FundFactory, UserFactory
from tests.helpers import assert_books_hold, at, book_loss, client_for, run_together
from tests.workers import database_url_of_test_database

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 50  # requests per round, half for each fund's contract
ROUNDS = 5


@contextmanager
def held(sql: str, params=()):
    """Another session holding row locks (`SELECT … FOR UPDATE`) until the block ends, as a
    long settlement or a stuck transaction would."""
    with psycopg.connect(database_url_of_test_database("lock-holder")) as other:
        with other.cursor() as cursor:
            cursor.execute(sql, params)
            assert cursor.fetchall(), "the lock holder locked nothing"
            try:
                yield
            finally:
                other.rollback()


def holding_fund(fund):
    return held("SELECT id FROM fund_fund WHERE id = %s FOR UPDATE", [fund.id])


@pytest.fixture
def funds_of_now(usdt_fund, linear):
    """The USDT fund with its linear contract and a USDC fund with its own, both started a day
    ago (so that a takeover closed a minute ago falls in an open cycle)."""
    usdc = AssetFactory(code="USDC", name="USD Coin", precision=6)
    usdc_fund = FundFactory(asset=usdc)
    usdc_linear = ContractFactory(symbol="BTCUSDC", margin_asset=usdc)
    anchor = timezone.now() - timedelta(days=1)
    for fund in (usdt_fund, usdc_fund):
        fund.anchor = anchor
        fund.save()
    return (usdt_fund, linear), (usdc_fund, usdc_linear)


def takeover(external_id: str, symbol: str, now) -> dict:
    return {
        "external_id": external_id,
        "contract": symbol,
        "side": "long",
        "quantity": "1",
        "takeover_price": "100",
        "close_price": "99.5",
        "remaining_margin": "2",  # a profit of 1.5 for the fund that books it
        "taken_over_at": (now - timedelta(minutes=2)).isoformat(),
        "closed_at": (now - timedelta(minutes=1)).isoformat(),
    }


def test_it_books_one_new_id_sent_for_two_funds_at_once_exactly_once(funds_of_now, monkeypatch):
    """Two funds' batches do not wait for each other's fund lock, so a new external id sent for
    a USDT and a USDC contract at the same moment meets only at the unique key. The batch that
    loses there must be run again and refused as a reused id (409, naming the item), never an
    IntegrityError 500, and the takeover is booked once, in the winner's fund."""
    (usdt_fund, usdt_linear), (usdc_fund, usdc_linear) = funds_of_now
    engine = UserFactory(username="trading-engine")
    clients = [client_for(engine, ApiToken.Kind.ENGINE) for _ in range(RACERS)]
    symbols = [usdt_linear.symbol, usdc_linear.symbol] * (RACERS // 2)
    clashes = []
    clash = liquidations._is_external_id_clash
    monkeypatch.setattr(
        liquidations, "_is_external_id_clash", lambda exc: clashes.append(exc) or clash(exc)
    )

    for round_ in range(ROUNDS):
        external_id, now = f"race-{round_}-{uuid.uuid4().hex[:12]}", timezone.now()

        def send(client, symbol, external_id=external_id, now=now):
            batch = {"items": [takeover(external_id, symbol, now)]}
            response = client.post("/api/v1/ingest/liquidations", batch, format="json")
            return symbol, response.status_code, response.json()

        # A 500 would not come back as an answer: the test client raises the server's error,
        # and run_together fails the test with it.
        answers = run_together(*[lambda c=c, s=s: send(c, s) for c, s in zip(clients, symbols)])

        statuses = sorted(status for _, status, _ in answers)
        assert set(statuses) <= {200, 201, 409}, statuses
        assert statuses.count(201) == 1, statuses
        winner = next(symbol for symbol, status, _ in answers if status == 201)
        loser = usdc_linear.symbol if winner == usdt_linear.symbol else usdt_linear.symbol
        assert {(s, st) for s, st, _ in answers} == {(winner, 201), (winner, 200), (loser, 409)}
        assert statuses.count(409) == RACERS // 2
        for _, status, body in answers:
            if status == 409:
                assert body["code"] == "id_reused", body
                assert (body["index"], body["id"], body["field"]) == (0, external_id, "contract")
                assert external_id in body["detail"]
            else:
                assert body["items"] == [
                    {
                        "index": 0,
                        "id": external_id,
                        "status": "created" if status == 201 else "existing",
                    }
                ]
        booked = LiquidationTakeover.objects.get(external_id=external_id)
        assert booked.contract.symbol == winner
        assert booked.fund == (usdt_fund if winner == usdt_linear.symbol else usdc_fund)
        profit = FundRecord.objects.get(kind="liquidation_profit", takeover=booked)
        assert profit.fund_id == booked.fund_id

    assert LiquidationTakeover.objects.count() == ROUNDS
    assert clashes, "the two funds' batches never met at the unique key: nothing was raced"
    for fund in (usdt_fund, usdc_fund):
        assert_books_hold(fund)


@pytest.fixture
def settlement_staff(db):
    user = UserFactory(username="ops", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    return client_for(user)


@pytest.mark.parametrize("idempotency_key", [None, "busy-1"])
def test_it_answers_a_deposit_busy_while_the_fund_stays_locked_and_books_it_after(
    usdt_fund, settlement_staff, settings, idempotency_key
):
    """A fund row held longer than BOOKS_LOCK_TIMEOUT must not keep a staff request (and its
    web worker) waiting: it is answered 503 books_busy with Retry-After at the timeout, books
    nothing, and does not claim its Idempotency-Key, so the same request goes through once the
    lock is let go."""
    settings.BOOKS_LOCK_TIMEOUT = 0.5
    url, body = "/api/v1/admin/funds/USDT/deposits", {"amount": "10", "reason": "top-up"}
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}

    with holding_fund(usdt_fund):
        started = time.monotonic()
        busy = settlement_staff.post(url, body, format="json", **headers)
        waited = time.monotonic() - started

    assert busy.status_code == 503, busy.content
    assert busy.json()["code"] == "books_busy" and busy.json()["detail"]
    assert busy["Retry-After"] == "1"
    assert 0.4 < waited < 5, f"waited {waited:.2f} s for a lock bounded at 0.5 s"
    assert not FundRecord.objects.exists() and not AdminAction.objects.exists()
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 0
    assert not IdempotentRequest.objects.exists()

    again = settlement_staff.post(url, body, format="json", **headers)
    assert again.status_code == 201, again.content
    assert not again.has_header("Idempotent-Replayed")
    assert FundRecord.objects.filter(kind="deposit").count() == 1
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 10 * 10**8
    assert_books_hold(usdt_fund)


@pytest.fixture
def cycle(usdt_fund, linear):
    book_loss(linear, "5", at(0, 10))
    return SettlementCycle.objects.get(fund=usdt_fund, starts_at=at(0))


LOCKERS = {  # helper: (the table whose row it waits for, how it is called)
    "lock_fund": ("fund_fund", lambda fund, cycle: lock_fund(asset_code=fund.asset.code)),
    "lock_funds": ("fund_fund", lambda fund, cycle: lock_funds(asset_ids=[fund.asset_id])),
    "lock_fund_by_id": ("fund_fund", lambda fund, cycle: lock_fund_by_id(fund_id=fund.id)),
    "lock_fund_of_cycle": (
        "fund_fund",
        lambda fund, cycle: lock_fund_of_cycle(cycle_id=cycle.id),
    ),
    "lock_cycle": ("fund_settlementcycle", lambda fund, cycle: lock_cycle(cycle_id=cycle.id)),
}


@pytest.mark.parametrize("locker", LOCKERS)
def test_it_gives_up_a_row_lock_wait_at_the_books_lock_timeout(usdt_fund, cycle, settings, locker):
    """Every row-lock helper bounds its wait by BOOKS_LOCK_TIMEOUT (PostgreSQL's lock_timeout,
    set for the transaction) and raises BooksBusy, the error tasks retry."""
    settings.BOOKS_LOCK_TIMEOUT = 0.2
    table, lock = LOCKERS[locker]
    row = usdt_fund.id if table == "fund_fund" else cycle.id
    with held(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [row]):
        started = time.monotonic()
        with pytest.raises(BooksBusy) as caught, transaction.atomic():
            lock(usdt_fund, cycle)
        waited = time.monotonic() - started
    assert caught.value.__cause__.__cause__.sqlstate == LOCK_NOT_AVAILABLE
    assert 0.15 < waited < 5, waited
    with transaction.atomic():  # and once the holder is gone it is taken at once
        lock(usdt_fund, cycle)


def show_lock_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        return cursor.fetchone()[0]


def test_it_bounds_lock_waits_for_its_own_transaction_only(usdt_fund, cycle, settings):
    """The bound is SET LOCAL: it ends with the transaction, so a pooled connection does not
    carry it into unrelated work; the posting lock waits unbounded (it holds no row lock that
    intake waits for) and the row locks taken after it are bounded again."""
    settings.BOOKS_LOCK_TIMEOUT = 0.25
    before = show_lock_timeout()
    with transaction.atomic():
        lock_fund(asset_code="USDT")
        assert show_lock_timeout() == "250ms"
    assert show_lock_timeout() == before
    with transaction.atomic():
        lock_cycle_posting(cycle_id=cycle.id)
        assert show_lock_timeout() == "0"
        lock_fund_of_cycle(cycle_id=cycle.id)
        assert show_lock_timeout() == "250ms"
    assert show_lock_timeout() == before
