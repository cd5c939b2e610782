"""The claim: a cycle moves to "settling", and its inputs are fixed from then on."""

from datetime import datetime

from django.core.exceptions import ValidationError

from fund.models import SettlementCycle
from fund.pagecache import books_changed
from fund.services.locks import books_transaction, lock_cycle, lock_fund_of_cycle

Status = SettlementCycle.Status


@books_transaction
def settlement_claim(*, cycle_id: int, now: datetime, ignore_grace: bool) -> bool:
    """Moves the cycle to "settling" under its fund's and its own lock (the order intake takes
    them in): once this commits no takeover or position profit enters the cycle any more, so
    its inputs are fixed for the posting. False when it is settled already."""
    lock_fund_of_cycle(cycle_id=cycle_id)
    cycle = lock_cycle(cycle_id=cycle_id)
    if cycle.status == Status.SETTLED:
        return False
    if cycle.status == Status.OPEN:
        if cycle.ends_at > now:
            raise ValidationError(
                {
                    "cycle": f"Cycle {cycle.id} runs until {cycle.ends_at:%Y-%m-%d %H:%M:%S} UTC; "
                    "close it first."
                },
                code="cycle_open",
            )
        cycle.closed_at = now
    in_grace = cycle.settle_after > now and not ignore_grace
    if cycle.status in (Status.OPEN, Status.CLOSED) and in_grace:
        raise ValidationError(
            {
                "cycle": f"Cycle {cycle.id} is in its grace period until "
                f"{cycle.settle_after:%Y-%m-%d %H:%M:%S} UTC."
            },
            code="grace_period",
        )
    cycle.status = Status.SETTLING
    cycle.settling_started_at = now
    cycle.attempts += 1
    cycle.error = ""
    cycle.save(update_fields=["status", "closed_at", "settling_started_at", "attempts", "error"])
    books_changed()
    return True
