"""A settlement whose worker died: told from a slow one, and sent again.

A settling worker holds its cycle's claim (locks.hold_cycle_claim) from before the claim to
after the posting or the failure; on PostgreSQL it is a session-level advisory lock, which the
database releases when the worker's connection ends. So a cycle that is "settling" while nobody
holds its claim has lost its worker: the beat (fund.tasks.resend_dead_settlements, every
DEAD_CLAIM_SECONDS) sends it again at once, rather than after the broker's visibility timeout
(an hour) or the scheduler's STALE_SETTLING (15 minutes). A posting that is merely slow still
holds its claim and is left alone. SQLite cannot tell: there a claim counts as dead once it is
STALE_SETTLING old, as the scheduler has it.

Whatever is sent, the posting happens once: the new settlement waits for any claim still held,
then claims the cycle again (attempts + 1) and posts under the posting lock, which re-checks the
status.
"""

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from fund.errors import ConflictError
from fund.models import AdminAction, Fund, SettlementCycle
from fund.services.audit import Audit, admin_action_record
from fund.services.cycles import STALE_SETTLING
from fund.services.locks import cycle_claim_held

logger = logging.getLogger("fund.services.settlement")
Status = SettlementCycle.Status

# A dead claim is sent again at once (the first time since its claim); should that settlement
# not have started after this long (no worker took it), it is sent again.
DEAD_RESEND_AFTER = timedelta(minutes=2)


def settlement_claim_alive(*, cycle: SettlementCycle, now: datetime | None = None) -> bool:
    """Whether the worker that claimed this settling cycle is still at it. Inside a transaction,
    a free claim stays taken until it ends (cycle_claim_held); outside one, this only looks."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic():
            return settlement_claim_alive(cycle=cycle, now=now)
    held = cycle_claim_held(cycle_id=cycle.id)
    if held is not None:
        return held
    now = now or timezone.now()
    started = cycle.settling_started_at
    return started is not None and started > now - STALE_SETTLING


def _not_resent_since_claim(now: datetime) -> Q:
    return (
        Q(settle_requested_at__isnull=True)
        | Q(settle_requested_at__lt=F("settling_started_at"))
        | Q(settle_requested_at__lte=now - DEAD_RESEND_AFTER)
    )


def settlements_dead_claims(*, now: datetime | None = None) -> list[int]:
    """The settling cycles whose claim is dead, each claimed for one resend (a conditional
    update of settle_requested_at, so that two beats, or the next run before a worker took it,
    do not send it again before DEAD_RESEND_AFTER). The caller sends them (tasks.py)."""
    now = now or timezone.now()
    dead = []
    settling = SettlementCycle.objects.filter(status=Status.SETTLING)
    for cycle_id in settling.order_by("id").values_list("id", flat=True):
        with transaction.atomic(durable=True):
            cycle = settling.filter(pk=cycle_id).first()
            if cycle is None or settlement_claim_alive(cycle=cycle, now=now):
                continue
            # Re-checks the status: a posting that ended since the read above committed first.
            claimed = (
                settling.filter(pk=cycle_id)
                .filter(_not_resent_since_claim(now))
                .update(settle_requested_at=now)
            )
        if claimed:
            logger.warning(
                "cycle %s has been settling since %s but its worker is gone: sending it again",
                cycle.id,
                cycle.settling_started_at,
            )
            dead.append(cycle.id)
    return dead


def resend_dead_claim(*, fund: Fund, cycle: SettlementCycle, audit: Audit, now: datetime) -> None:
    """Staff's resend of a settling cycle (close_now.py; fund and cycle locked): refused with a
    409 while its worker is alive (nothing changes); otherwise audited, for the caller to send
    once this has committed."""
    if settlement_claim_alive(cycle=cycle, now=now):
        since = cycle.settling_started_at
        since = f"{since:%Y-%m-%d %H:%M:%S} UTC" if since else "an unrecorded time"
        why = (
            "its worker's database session holds the claim"
            if connection.vendor == "postgresql"
            else f"its claim is less than {STALE_SETTLING.seconds // 60} minutes old"
        )
        raise ConflictError(
            f"Cycle {cycle.id} is still being settled ({why}; settling since "
            f"{since}). Nothing was sent again: the cycle settles when "
            "that posting ends, and is sent again by itself should its worker die.",
            code="settlement_running",
        )
    cycle.settle_requested_at = now
    cycle.save(update_fields=["settle_requested_at"])
    admin_action_record(
        audit=audit,
        action=AdminAction.Action.SETTLE,
        fund=fund,
        cycle=cycle,
        details={
            "status_before": cycle.status,
            "resend": "dead claim",
            "settling_started_at": str(cycle.settling_started_at),
            "attempts": cycle.attempts,
        },
    )
