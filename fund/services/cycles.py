"""Settlement cycles: opening them back to back, finding the one a moment belongs to, closing
the ones that are due."""

import logging
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from fund.models import AdminAction, Event, Fund, SettlementCycle
from fund.pagecache import books_changed
from fund.services.audit import admin_action_record
from fund.services.locks import BooksBusy, books_transaction, lock_fund, lock_fund_by_id
from fund.services.outbox import Emit, cycle_event_data, events_emit
from statements.money import MoneyError, parse_decimal

logger = logging.getLogger(__name__)

# A cycle left in "settling" this long (its worker died and the broker has not redelivered yet)
# is handed out again by the beat task; the settlement itself posts at most once.
STALE_SETTLING = timedelta(minutes=15)
# A settlement sent to the workers is not sent again before this, unless it is still not
# settled by then (its task was lost, or the workers were down).
RESEND_AFTER = timedelta(minutes=10)


def cycle_open_next(*, fund: Fund) -> SettlementCycle:
    """Opens the fund's next cycle, straight after the last one (no gaps); the first starts at
    the fund's anchor. Length, grace period and ratios are the fund's current ones: a schedule
    change applies from the next cycle on. The fund row must be locked.
    """
    assert connection.in_atomic_block
    length = timedelta(seconds=fund.cycle_seconds)
    last = fund.cycles.order_by("-starts_at").first()
    starts_at = last.ends_at if last is not None else fund.anchor
    return SettlementCycle.objects.create(
        fund=fund,
        starts_at=starts_at,
        ends_at=starts_at + length,
        grace_seconds=fund.grace_seconds,
        fund_ratio=fund.fund_ratio,
        screening_ratio=fund.screening_ratio,
    )


def cycle_covering(*, fund: Fund, at: datetime) -> SettlementCycle:
    """The cycle whose period holds `at`, opening cycles up to it when needed (fund locked)."""
    cycle = fund.cycles.filter(starts_at__lte=at, ends_at__gt=at).first()
    if cycle is not None:
        return cycle
    latest = fund.cycles.order_by("-starts_at").first()
    if latest is not None and at < latest.starts_at:
        first = fund.cycles.order_by("starts_at").first()
        raise ValidationError(
            f"{at:%Y-%m-%d %H:%M:%S} UTC is before the fund's first settlement cycle "
            f"({first.starts_at:%Y-%m-%d %H:%M:%S} UTC)."
        )
    if latest is None and at < fund.anchor:
        raise ValidationError(
            f"{at:%Y-%m-%d %H:%M:%S} UTC is before the fund's first settlement cycle "
            f"({fund.anchor:%Y-%m-%d %H:%M:%S} UTC)."
        )
    while True:
        cycle = cycle_open_next(fund=fund)
        if cycle.ends_at > at:
            return cycle


def cycle_first_start(*, fund: Fund) -> datetime:
    """The earliest moment a takeover of this fund may close at."""
    first = fund.cycles.order_by("starts_at").values_list("starts_at", flat=True).first()
    return first if first is not None else fund.anchor


def cycles_for_takeovers(
    *, fund: Fund, closed_at: list[datetime]
) -> list[tuple[SettlementCycle, bool]]:
    """The cycle each takeover belongs to, and whether it is late, for a batch (fund locked).

    A takeover belongs to the cycle that holds its close time; when that cycle is already
    settling or settled, it goes to the earliest cycle after it that still accepts and is marked
    late. Cycles are opened as needed; the whole batch costs a few queries, not one per item.
    Every time must be at or after `cycle_first_start`.
    """
    assert connection.in_atomic_block
    if not closed_at:
        return []
    cycle_covering(fund=fund, at=max(closed_at))
    cycles = list(fund.cycles.filter(ends_at__gt=min(closed_at)).order_by("starts_at"))
    starts = [cycle.starts_at for cycle in cycles]
    # For each cycle, the first cycle at or after it that still accepts takeovers.
    accepting: list[SettlementCycle | None] = [None] * len(cycles)
    following = None
    for i in range(len(cycles) - 1, -1, -1):
        if cycles[i].is_accepting:
            following = cycles[i]
        accepting[i] = following
    if None in accepting:  # every cycle from some point to the newest is settling or settled
        opened = cycle_open_next(fund=fund)
        accepting = [cycle or opened for cycle in accepting]
    result = []
    for at in closed_at:
        i = bisect_right(starts, at) - 1
        result.append((accepting[i], accepting[i] is not cycles[i]))
    return result


@dataclass
class DueCycles:
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    to_settle: list[int] = field(default_factory=list)


def cycles_close_due(*, now: datetime | None = None, claim: bool = True) -> DueCycles:
    """Brings every fund's cycles up to `now`: opens the current cycle, closes ended ones and
    lists the cycles whose grace period is over (plus stale "settling" ones) for settlement.

    With `claim`, each listed cycle is claimed for sending with a conditional update of
    `settle_requested_at`, so that a second scheduler, or the next minute's run while a worker
    is still busy, does not send it again before RESEND_AFTER. Safe to run from several beats at
    once: each fund is handled under its row lock.
    """
    now = now or timezone.now()
    due = DueCycles()
    for fund_id in Fund.objects.order_by("id").values_list("id", flat=True):
        try:
            mine = _fund_close_due(fund_id=fund_id, now=now, claim=claim)
        except BooksBusy:
            logger.warning("fund %s is busy: its cycles are brought up to date next run", fund_id)
            continue
        due.opened += mine.opened
        due.closed += mine.closed
        due.to_settle += mine.to_settle
    return due


@books_transaction
def _fund_close_due(*, fund_id: int, now: datetime, claim: bool) -> DueCycles:
    """cycles_close_due for one fund, under its lock."""
    due = DueCycles()
    Status = SettlementCycle.Status
    fund = lock_fund_by_id(fund_id=fund_id)
    if now >= fund.anchor:
        last_id = fund.cycles.order_by("-id").values_list("id", flat=True).first() or 0
        cycle_covering(fund=fund, at=now)
        due.opened = list(
            fund.cycles.filter(id__gt=last_id).order_by("id").values_list("id", flat=True)
        )
    ended = fund.cycles.filter(status=Status.OPEN, ends_at__lte=now)
    closing = list(ended.select_related("fund__asset").order_by("starts_at"))
    due.closed = [cycle.id for cycle in closing]
    if ended.update(status=Status.CLOSED, closed_at=now) or due.opened:
        books_changed()
    events_emit(
        [
            Emit(
                Event.Kind.CYCLE_CLOSED,
                fund,
                {**cycle_event_data(cycle), "status": Status.CLOSED},
                cycle,
            )
            for cycle in closing
        ]
    )
    waiting = fund.cycles.filter(status__in=[Status.CLOSED, Status.SETTLING, Status.FAILED])
    for cycle in waiting.order_by("starts_at"):
        if cycle.status == Status.CLOSED:
            ready, resend = cycle.settle_after <= now, RESEND_AFTER
        elif cycle.status == Status.SETTLING:
            ready, resend = cycle.settling_started_at <= now - STALE_SETTLING, RESEND_AFTER
        else:  # failed: retried, less and less often, until it settles
            ready, resend = True, RESEND_AFTER * min(2 ** max(cycle.attempts - 1, 0), 12)
        if not ready:
            continue
        if claim:
            claimed = SettlementCycle.objects.filter(
                Q(settle_requested_at__isnull=True) | Q(settle_requested_at__lte=now - resend),
                pk=cycle.pk,
            ).update(settle_requested_at=now)
            if not claimed:
                continue
        due.to_settle.append(cycle.id)
    return due


def cycles_release_claim(*, cycle_ids: list[int]) -> None:
    """Gives back the claims of cycles whose settlement could not be sent (cycles_close_due)."""
    SettlementCycle.objects.filter(pk__in=cycle_ids).exclude(
        status=SettlementCycle.Status.SETTLED
    ).update(settle_requested_at=None)


RATIO_ERROR = "Enter a ratio from 0 to 1 with at most 4 decimals."


def schedule_ratio(raw) -> Decimal:
    """A schedule's ratio (fund share, screening): plain decimal text from 0 to 1, at most four
    decimals; ValidationError otherwise."""
    try:
        value = parse_decimal(raw.strip() if isinstance(raw, str) else raw)
    except MoneyError:
        raise ValidationError(RATIO_ERROR) from None
    if not 0 <= value <= 1 or value != value.quantize(Decimal("0.0001")):
        raise ValidationError(RATIO_ERROR)
    return value


@books_transaction
def fund_schedule_update(
    *,
    asset_code: str,
    cycle_seconds,
    grace_seconds,
    fund_ratio,
    screening_ratio,
    audit,
    anchor=None,
) -> Fund:
    """Changes a fund's schedule and ratios; they apply from the next cycle opened (each cycle
    keeps the values it was opened with). Recorded in the audit trail with before and after."""
    fund = lock_fund(asset_code=asset_code)
    errors, values = {}, {}
    for name, raw, low, high in (
        ("cycle_seconds", cycle_seconds, 60, 366 * 86400),
        ("grace_seconds", grace_seconds, 0, 86400),
    ):
        if isinstance(raw, str) and re.fullmatch(r"[0-9]{1,9}", raw.strip()):
            raw = int(raw.strip())  # ASCII digits only: int() would take "٥" for 5
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            errors[name] = f"Enter a whole number of seconds from {low:,} to {high:,}."
        else:
            values[name] = raw
    for name, raw in (("fund_ratio", fund_ratio), ("screening_ratio", screening_ratio)):
        try:
            values[name] = schedule_ratio(raw)
        except ValidationError as exc:
            errors[name] = exc.messages[0]
    if anchor is not None and anchor != fund.anchor:
        earliest = timezone.now() - timedelta(
            seconds=values.get("cycle_seconds", fund.cycle_seconds)
        )
        if anchor < earliest:
            errors["anchor"] = "The first cycle may start at most one cycle length ago."
        elif fund.cycles.exists():
            errors["anchor"] = (
                "The anchor only places a fund's first cycle; this fund's cycles have started, "
                "so a new schedule simply applies from the next cycle."
            )
        else:
            values["anchor"] = anchor
    if errors:
        raise ValidationError(errors)
    before = {name: str(getattr(fund, name)) for name in values}
    for name, value in values.items():
        setattr(fund, name, value)
    fund.save(update_fields=[*values, "updated_at"])
    admin_action_record(
        audit=audit,
        action=AdminAction.Action.SCHEDULE,
        fund=fund,
        details={"before": before, "after": {k: str(v) for k, v in values.items()}},
    )
    books_changed()
    return fund
