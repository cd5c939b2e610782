"""Staff's "settle now": an open cycle ends now, and its settlement is sent to the workers."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from fund.errors import ConflictError
from fund.models import AdminAction, Event, SettlementCycle
from fund.pagecache import books_changed
from fund.services.audit import Audit, admin_action_record
from fund.services.locks import (
    after_books_commit,
    books_transaction,
    lock_cycle,
    lock_fund_of_cycle,
)
from fund.services.outbox import cycle_event_data, event_emit
from fund.services.settlement.resend import resend_dead_claim

Status = SettlementCycle.Status


@books_transaction
def settlement_cycle_close_now(
    *, cycle_id: int, audit: Audit, now: datetime | None = None
) -> SettlementCycle:
    """An open cycle ends now and the next cycle takes the rest of its period (the schedule
    keeps its grid); a closed or failed cycle is taken as it is, and a settling one whose worker
    died is sent again (409 while its worker is alive: resend.py). Audited. The settlement itself
    runs afterwards (settle_cycle with ignore_grace), once this has committed."""
    now = now or timezone.now()
    fund = lock_fund_of_cycle(cycle_id=cycle_id)
    cycle = lock_cycle(cycle_id=cycle_id)
    if cycle.status == Status.SETTLING:  # 409 while its worker lives; sent again if it died
        resend_dead_claim(fund=fund, cycle=cycle, audit=audit, now=now)
        return cycle
    if cycle.status == Status.SETTLED:
        raise ConflictError(
            f"Cycle {cycle.id} is {cycle.get_status_display().lower()} already.",
            code="cycle_settled",
        )
    details = {"status_before": cycle.status, "ends_at_before": cycle.ends_at.isoformat()}
    if cycle.status == Status.OPEN:
        if cycle.starts_at >= now:
            raise ValidationError({"cycle": f"Cycle {cycle.id} has not started yet."})
        # Takeovers may close up to a second or two ahead of this clock: the cycle keeps them.
        latest = cycle.takeovers.order_by("-closed_at").values_list("closed_at", flat=True).first()
        if latest is not None and latest >= now:
            now = latest + timedelta(microseconds=1)
        if cycle.ends_at > now:
            rest_ends_at = cycle.ends_at
            cycle.ends_at = now
            cycle.save(update_fields=["ends_at"])
            SettlementCycle.objects.create(
                fund=fund,
                starts_at=now,
                ends_at=rest_ends_at,
                grace_seconds=fund.grace_seconds,
                fund_ratio=fund.fund_ratio,
                screening_ratio=fund.screening_ratio,
            )
            details["closed_early"] = True
        cycle.status = Status.CLOSED
        cycle.closed_at = now
        cycle.save(update_fields=["status", "closed_at"])
        event_emit(
            Event.Kind.CYCLE_CLOSED,
            fund=fund,
            cycle=cycle,
            data={**cycle_event_data(cycle), "closed_early": bool(details.get("closed_early"))},
        )
    admin_action_record(
        audit=audit, action=AdminAction.Action.SETTLE, fund=fund, cycle=cycle, details=details
    )
    books_changed()
    return cycle


@dataclass(frozen=True)
class SettleNow:
    cycle: SettlementCycle
    task_id: str


def settlement_cycle_settle_now(*, cycle_id: int, audit: Audit) -> SettleNow:
    """The console's and the API's "settle now": closes the cycle (settlement_cycle_close_now)
    and, once that has committed, sends its settlement to the workers (in-process where Celery
    runs eagerly). The cycle is read back after the send."""
    return _send_once_committed(settlement_cycle_close_now(cycle_id=cycle_id, audit=audit))


def _send_once_committed(cycle: SettlementCycle) -> SettleNow:
    """Sends the cycle's settlement to the workers once the books' transaction has committed
    (in-process where Celery runs eagerly); the cycle is read back after the send."""
    from fund.tasks import settle_cycle  # the tasks call the services: imported when used

    task_id = str(uuid.uuid4())
    after_books_commit(
        lambda: settle_cycle.apply_async((cycle.id,), {"ignore_grace": True}, task_id=task_id)
    )
    cycle.refresh_from_db()
    return SettleNow(cycle=cycle, task_id=task_id)


@books_transaction
def _resend_locked(*, cycle_id: int, audit: Audit, now: datetime) -> SettlementCycle:
    fund = lock_fund_of_cycle(cycle_id=cycle_id)
    cycle = lock_cycle(cycle_id=cycle_id)
    if cycle.status != Status.SETTLING:
        raise ConflictError(
            f"Cycle {cycle.id} is {cycle.get_status_display().lower()}, not settling: "
            "nothing to send again.",
            code="cycle_not_settling",
        )
    resend_dead_claim(fund=fund, cycle=cycle, audit=audit, now=now)
    return cycle


def settlement_cycle_resend(
    *, cycle_id: int, audit: Audit, now: datetime | None = None
) -> SettleNow:
    """The console's "send the settlement again", for a settling cycle only: sent when its
    worker died, refused (409, nothing sent) while its posting is alive (resend.py)."""
    return _send_once_committed(
        _resend_locked(cycle_id=cycle_id, audit=audit, now=now or timezone.now())
    )
