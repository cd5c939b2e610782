"""The outbox: every change others must hear of writes its event in the change's own transaction,
so that there is no event without its change and no change without its event.

Events are numbered 1, 2, 3 … without gaps: the numbers come from one counter row, taken with
one `INSERT … ON CONFLICT DO UPDATE … RETURNING` as the transaction's last step of the books (the
row stays locked until the commit, so numbers are given in commit order and a rolled-back
transaction gives its numbers back). That is the last lock of fund/services/locks.py's order.
Events are append-only (PostgreSQL triggers, migration 0016). The engine reads them in order
(`/api/v1/engine/events`); the public ones carry no trader identity.
"""

import contextlib
import contextvars
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from fund.models import Event, Fund, SettlementCycle

_quiet = contextvars.ContextVar("outbox_quiet", default=False)


@contextlib.contextmanager
def fan_out_paused():
    """Events written inside are not fanned out at their commit (the demo's history loader);
    the beat's sweep fans out whatever lies after each consumer's cursor."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def _kick() -> None:
    """After an event's commit: the fan-out (webhooks, emails) is sent to the workers. Never
    fails the change that committed: without a broker, the beat's sweep fans out within
    WEBHOOK_SWEEP_SECONDS."""
    from config.celery import dispatch_or_log
    from fund.tasks import fan_out_events  # the tasks call the services: imported when used

    dispatch_or_log(
        fan_out_events, failed="the fan-out was not sent; the beat's sweep fans the events out"
    )


@dataclass(frozen=True)
class Emit:
    kind: str
    fund: Fund
    data: dict
    cycle: SettlementCycle | None = None
    public: bool = True


def events_emit(events: list[Emit], *, now: datetime | None = None) -> list[int]:
    """Writes the events, numbered after the last; inside the change's transaction."""
    assert connection.in_atomic_block, "events are written inside the change's transaction"
    if not events:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fund_eventcounter (id, last) VALUES (1, %s) ON CONFLICT (id) DO UPDATE "
            "SET last = fund_eventcounter.last + EXCLUDED.last RETURNING last",
            [len(events)],
        )
        (last,) = cursor.fetchone()
    first = last - len(events) + 1
    moment = now or timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                seq=first + i,
                kind=e.kind,
                fund=e.fund,
                cycle=e.cycle,
                data=e.data,
                public=e.public,
                created_at=moment,
            )
            for i, e in enumerate(events)
        ]
    )
    if not _quiet.get() and not any(f is _kick for _, f, _ in connection.run_on_commit):
        transaction.on_commit(_kick)
    return list(range(first, last + 1))


def event_emit(kind: str, *, fund: Fund, data: dict, cycle=None, public: bool = True) -> int:
    return events_emit([Emit(kind, fund, data, cycle, public)])[0]


def cycle_event_data(cycle: SettlementCycle) -> dict:
    """A cycle as its events show it: its id, fund, period and status (no trader identity)."""
    return {
        "cycle": cycle.id,
        "asset": cycle.fund.asset.code,
        "starts_at": cycle.starts_at.isoformat(),
        "ends_at": cycle.ends_at.isoformat(),
        "status": cycle.status,
    }
