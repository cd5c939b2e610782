"""The books' locks (fund/services/locks.py): taken inside a transaction only, and a lock wait
that ran out comes out as BooksBusy (the PostgreSQL side is in tests/fund/test_postgres_locks.py).

These tests run without pytest-django's enclosing transaction (transaction=True): "outside a
transaction" and "durable" mean what they say only then."""

import pytest
from django.db import OperationalError, connection, transaction
from psycopg.errors import LockNotAvailable

from fund.models import SettlementCycle
from fund.services.locks import (
    BooksBusy,
    books_transaction,
    idempotent_transaction,
    is_lock_timeout,
    lock_cycle,
    lock_cycle_posting,
    lock_fund,
    lock_fund_by_id,
    lock_fund_of_cycle,
    lock_funds,
)
from tests.factories import UserFactory
from tests.helpers import at, book_loss

pytestmark = pytest.mark.django_db(transaction=True)

HELPERS = {
    "lock_fund": lambda fund, cycle: lock_fund(asset_code=fund.asset.code),
    "lock_funds": lambda fund, cycle: lock_funds(asset_ids=[fund.asset_id]),
    "lock_fund_by_id": lambda fund, cycle: lock_fund_by_id(fund_id=fund.id),
    "lock_fund_of_cycle": lambda fund, cycle: lock_fund_of_cycle(cycle_id=cycle.id),
    "lock_cycle": lambda fund, cycle: lock_cycle(cycle_id=cycle.id),
    "lock_cycle_posting": lambda fund, cycle: lock_cycle_posting(cycle_id=cycle.id),
}


@pytest.fixture
def cycle(usdt_fund, linear):
    book_loss(linear, "5", at(0, 10))
    return SettlementCycle.objects.get(fund=usdt_fund)


@pytest.mark.parametrize("helper", HELPERS)
def test_it_refuses_to_take_a_lock_outside_a_transaction(usdt_fund, cycle, helper):
    """A row lock taken in autocommit would be let go at once: the helper would lock nothing
    while its caller believed the fund was held, so each one refuses."""
    assert not connection.in_atomic_block
    with pytest.raises(RuntimeError, match="inside a transaction only"):
        HELPERS[helper](usdt_fund, cycle)


@pytest.mark.parametrize("helper", HELPERS)
def test_it_takes_the_same_lock_inside_a_transaction(usdt_fund, cycle, helper):
    """The other side of the refusal: inside a transaction every helper runs (so the test above
    refuses for the reason it names, not because its arguments were wrong)."""
    with transaction.atomic():
        HELPERS[helper](usdt_fund, cycle)


def _lock_timeout_error() -> OperationalError:
    """What Django raises when PostgreSQL's lock_timeout ends a wait: its OperationalError
    wrapping psycopg's LockNotAvailable (SQLSTATE 55P03)."""
    try:
        try:
            raise LockNotAvailable("canceling statement due to lock timeout")
        except LockNotAvailable as cause:
            raise OperationalError("canceling statement due to lock timeout") from cause
    except OperationalError as error:
        return error


def test_it_answers_a_lock_timeout_as_books_busy_and_rolls_back():
    """The lock wait's own error (its SQLSTATE, as psycopg carries it) becomes BooksBusy, the one
    error tasks retry and the API answers with 503, and the work done before it is undone."""
    error = _lock_timeout_error()
    assert is_lock_timeout(error)

    @books_transaction
    def work():
        UserFactory(username="written-before-the-wait")
        raise error

    with pytest.raises(BooksBusy) as caught:
        work()
    assert caught.value.__cause__ is error
    assert caught.value.retry_after == 1 and "busy" in caught.value.message
    assert not connection.in_atomic_block
    assert not UserFactory._meta.model.objects.filter(username="written-before-the-wait").exists()


def test_it_lets_other_database_errors_through_unchanged():
    """Only a lock wait is "busy": another OperationalError (a lost connection, a full disk)
    must not be retried as if it would pass shortly."""
    error = OperationalError("server closed the connection unexpectedly")
    assert not is_lock_timeout(error)

    @books_transaction
    def work():
        raise error

    with pytest.raises(OperationalError) as caught:
        work()
    assert caught.value is error


def test_it_answers_sqlites_busy_timeout_as_books_busy():
    """SQLite lets one writer in at a time; a writer that waited out the busy timeout gets
    sqlite3's "database is locked", which is the same "try again shortly"."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's busy timeout")

    @books_transaction
    def work():
        raise OperationalError("database is locked")

    with pytest.raises(BooksBusy):
        work()


def test_it_keeps_a_books_transaction_durable_outside_an_idempotent_request():
    """Nothing a caller does after a service returned may roll the money move back: a service
    called inside someone else's transaction is refused."""

    @books_transaction
    def work():
        return "done"

    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        work()
    assert work() == "done"


def test_it_commits_a_service_with_its_idempotent_request_or_not_at_all():
    """The one exception to durability: inside `idempotent_transaction` the service's work
    commits with the request's stored answer, and goes when the request fails afterwards."""

    @books_transaction
    def work(username):
        return UserFactory(username=username)

    with idempotent_transaction():
        work("kept")
    with pytest.raises(RuntimeError, match="after the service"), idempotent_transaction():
        work("undone")
        raise RuntimeError("failed after the service, before the answer was stored")
    names = set(UserFactory._meta.model.objects.values_list("username", flat=True))
    assert "kept" in names and "undone" not in names
