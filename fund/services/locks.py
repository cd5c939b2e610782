"""Every lock of the books, and the one order they are taken in.

A transaction that changes the books takes, in this order and only the ones it needs:

0. (a settling worker, across its transactions) a cycle's claim (`hold_cycle_claim`: a
   PostgreSQL session-level advisory lock, held from before the claim to after the posting or
   the failure; the database drops it when the worker's connection dies, which is how a dead
   claim is told from a slow one: `cycle_claim_held`);
1. a cycle's posting lock (`lock_cycle_posting`: a PostgreSQL advisory lock; one posting of a
   cycle at a time, held without any row lock that intake waits for);
2. the funds' rows (`lock_fund`, `lock_funds`, `lock_fund_of_cycle`), several in id order;
3. the cycles' rows (`lock_cycle`);
4. last, the outbox's counter row (fund/services/outbox.py: `events_emit`, the transaction's last
   step of the books, held to the commit so that events are numbered in commit order).

Intake, deposits, withdrawals, corrections, schedules, the scheduler and the settlement all go
through these helpers, so no two of them can deadlock. Each refuses to run outside a
transaction. A lock that waits longer than `BOOKS_LOCK_TIMEOUT` seconds (PostgreSQL's
`lock_timeout`, set for the rest of the transaction) raises `BooksBusy`: tasks retry it, the API
answers 503 with Retry-After.
"""

import contextlib
import contextvars
import functools
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction

from fund.models import Fund, SettlementCycle

ADVISORY_SETTLE = 7_117_001  # the first key of the settlement's advisory locks
ADVISORY_CLAIM = 7_117_002  # the first key of the settling workers' claims (session-level)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout expired


logger = logging.getLogger(__name__)


class BooksBusy(Exception):
    """A lock of the books stayed taken longer than BOOKS_LOCK_TIMEOUT: try again shortly."""

    retry_after = 1

    def __init__(self, message: str = "The books are busy with another change; try again shortly."):
        super().__init__(message)
        self.message = message


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether a database error is a lock wait that ran out (PostgreSQL's lock_timeout, or
    SQLite's busy timeout)."""
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        return True
    return connection.vendor == "sqlite" and "database is locked" in str(exc)


# Set by `idempotent_transaction` while it holds the transaction that commits an API request's
# work together with its stored answer (fund/api/idempotency.py).
_enclosing = contextvars.ContextVar("books_enclosing_transaction", default=False)


def books_transaction(func):
    """An entry-point service of the books: one durable transaction (nothing the caller does
    afterwards can roll it back), whose lock timeouts come out as BooksBusy. The one exception
    to durability is `idempotent_transaction`, which commits the work and the stored answer of
    an Idempotency-Key request together."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic(durable=not _enclosing.get()):
                return func(*args, **kwargs)
        except OperationalError as exc:
            if is_lock_timeout(exc):
                raise BooksBusy() from exc
            raise

    return wrapper


class idempotent_transaction:
    """The durable transaction of one idempotent API request: the services it calls run inside
    it, so the claim of the key, the money move and the stored answer commit together or not
    at all."""

    def __enter__(self):
        self._atomic = transaction.atomic(durable=True)
        try:
            self._atomic.__enter__()  # SQLite's BEGIN IMMEDIATE waits for the write lock here
        except OperationalError as exc:
            if is_lock_timeout(exc):
                raise BooksBusy() from exc
            raise
        self._token = _enclosing.set(True)
        return self

    def __exit__(self, exc_type, exc, tb):
        _enclosing.reset(self._token)
        try:
            return self._atomic.__exit__(exc_type, exc, tb)
        except OperationalError as error:
            if is_lock_timeout(error):
                raise BooksBusy() from error
            raise


def _bounded() -> None:
    """Bounds every lock wait of the rest of this transaction (PostgreSQL); SQLite lets one
    writer in at a time and waits its own busy timeout."""
    if not connection.in_atomic_block:
        raise RuntimeError("The books' locks are taken inside a transaction only.")
    if connection.vendor == "postgresql":
        milliseconds = max(1, int(settings.BOOKS_LOCK_TIMEOUT * 1000))
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {milliseconds}")


def _locking(run):
    _bounded()
    try:
        return run()
    except OperationalError as exc:
        if is_lock_timeout(exc):
            raise BooksBusy() from exc
        raise


def _no_fund(asset_code: str) -> ValidationError:
    return ValidationError({"asset": f"There is no insurance fund for the asset {asset_code!r}."})


def lock_fund(*, asset_code: str) -> Fund:
    """The fund of a margin asset, locked for the rest of the transaction."""
    fund = _locking(
        lambda: (
            Fund.objects.select_for_update()
            .select_related("asset")
            .filter(asset__code=asset_code)
            .first()
        )
    )
    if fund is None:
        raise _no_fund(asset_code)
    return fund


def lock_funds(*, asset_ids: Iterable[int]) -> dict[int, Fund]:
    """The funds of these margin assets, locked in id order; keyed by asset id. An asset
    without a fund is refused."""
    asset_ids = set(asset_ids)
    funds = _locking(
        lambda: list(
            Fund.objects.select_for_update()
            .select_related("asset")
            .filter(asset_id__in=asset_ids)
            .order_by("id")
        )
    )
    locked = {fund.asset_id: fund for fund in funds}
    if asset_ids - set(locked):
        raise ValidationError({"contract": "The contract's margin asset has no insurance fund."})
    return locked


def lock_fund_by_id(*, fund_id: int) -> Fund:
    """A fund known by id (the scheduler's walk over every fund), locked."""
    return _locking(
        lambda: Fund.objects.select_for_update().select_related("asset").get(pk=fund_id)
    )


def lock_fund_of_cycle(*, cycle_id: int) -> Fund:
    """The fund of a cycle, locked: the first lock of every change to a cycle."""
    fund_id = SettlementCycle.objects.filter(pk=cycle_id).values_list("fund_id", flat=True).first()
    if fund_id is None:
        raise ValidationError({"cycle": f"There is no settlement cycle {cycle_id}."})
    return lock_fund_by_id(fund_id=fund_id)


def lock_cycle(*, cycle_id: int) -> SettlementCycle:
    """A cycle's row, locked; its fund must be locked first (or its posting, for the posting)."""
    return _locking(lambda: SettlementCycle.objects.select_for_update().get(pk=cycle_id))


def lock_cycle_posting(*, cycle_id: int) -> None:
    """A transaction-scoped lock on posting this cycle (PostgreSQL advisory lock; SQLite lets one
    writer in at a time anyway). A second posting waits here for as long as the first takes
    (no timeout: it holds no row lock meanwhile), then finds the cycle settled. The row locks
    taken after it are bounded again."""
    if not connection.in_atomic_block:
        raise RuntimeError("The books' locks are taken inside a transaction only.")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = 0")
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_SETTLE, cycle_id])


def after_books_commit(func) -> None:
    """Runs `func` once the books' work has committed: at once after a service returned, or on
    the commit of the enclosing idempotent transaction (so that a task is never sent for work
    that could still roll back)."""
    if _enclosing.get():
        transaction.on_commit(func, robust=False)
    else:
        func()


@contextlib.contextmanager
def hold_cycle_claim(*, cycle_id: int):
    """Holds a settling worker's claim on a cycle for the whole settlement: the claim's
    transaction, the posting's (or both postings') and the failure's. A PostgreSQL session-level
    advisory lock, so it outlives each commit and rollback, and PostgreSQL releases it when the
    connection ends: a killed worker's claim is free within moments of its death. A second
    settlement of the same cycle waits here for the first to finish (or die), then finds it
    settled. SQLite has no such lock (one writer at a time; see cycle_claim_held)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [ADVISORY_CLAIM, cycle_id])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_CLAIM, cycle_id])
        except Exception:  # the connection itself failed: ending it is what releases the lock
            logger.warning("could not release the claim of cycle %s", cycle_id, exc_info=True)
            if not connection.in_atomic_block:
                connection.close()


def cycle_claim_held(*, cycle_id: int) -> bool | None:
    """Whether a live database session holds this cycle's claim (hold_cycle_claim) or its
    posting lock; inside a transaction only. When both are free they stay taken by this
    transaction until it ends, so no new claim starts before what this transaction decides on
    has committed (a new claimant waits for it). None on SQLite, which cannot tell."""
    if connection.vendor != "postgresql":
        return None
    if not connection.in_atomic_block:
        raise RuntimeError("The books' locks are taken inside a transaction only.")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s) AND pg_try_advisory_xact_lock(%s, %s)",
            [ADVISORY_CLAIM, cycle_id, ADVISORY_SETTLE, cycle_id],
        )
        return not cursor.fetchone()[0]
