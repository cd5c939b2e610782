"""A posting that failed: the cycle is marked failed with its error, for a retry."""

import logging

from django.db import transaction

from fund.models import Event, SettlementCycle
from fund.pagecache import books_changed
from fund.services.locks import lock_cycle_posting
from fund.services.outbox import cycle_event_data, event_emit

logger = logging.getLogger("fund.services.settlement")


def settlement_fail(*, cycle_id: int, error: Exception) -> None:
    """Marks the cycle failed with its error, so that it shows up for a retry. Waits for a
    concurrent healthy posting of the cycle first, which leaves it settled."""
    try:
        with transaction.atomic(durable=True):
            lock_cycle_posting(cycle_id=cycle_id)
            updated = SettlementCycle.objects.filter(
                pk=cycle_id, status=SettlementCycle.Status.SETTLING
            ).update(
                status=SettlementCycle.Status.FAILED,
                error=f"{type(error).__name__}: {error}"[:4000],
            )
            if updated:
                cycle = SettlementCycle.objects.select_related("fund__asset").get(pk=cycle_id)
                event_emit(
                    Event.Kind.CYCLE_FAILED,
                    fund=cycle.fund,
                    cycle=cycle,
                    data={**cycle_event_data(cycle), "attempts": cycle.attempts},
                )
            books_changed()
    except Exception:  # the database itself may be what failed; the beat retries stale cycles
        logger.exception("could not record the failure of cycle %s", cycle_id)
        return
    if updated:
        logger.error("settling cycle %s failed: %s", cycle_id, error)
