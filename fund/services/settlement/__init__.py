"""Settling a cycle: claim it, post its settlement all or nothing, record a failure; and the
staff's "settle now" and preview.

Exactly once: the cycle moves open → closed → settling → settled (or failed, which keeps the
error and is retried). The claim fixes the cycle's inputs (claim.py); the posting re-checks the
status under the cycle's posting lock, so a second or concurrent settle posts nothing, and a
crash mid-posting leaves nothing behind (posting.py). Locks: fund/services/locks.py.
"""

import logging
from datetime import datetime

from django.utils import timezone

from fund.models import SettlementCycle
from fund.services.locks import after_books_commit, hold_cycle_claim
from fund.services.settlement.claim import settlement_claim
from fund.services.settlement.close_now import (
    settlement_cycle_close_now,
    settlement_cycle_resend,
    settlement_cycle_settle_now,
)
from fund.services.settlement.failure import settlement_fail
from fund.services.settlement.posting import (
    SettleOutcome,
    cycle_loss_units,
    ranked_positions,
    settlement_compute,
    settlement_post,
)
from fund.services.settlement.preview import settlement_preview, settlement_preview_record
from fund.services.settlement.resend import settlement_claim_alive, settlements_dead_claims
from fund.services.transparency import checkpoint_sign_after_settlement

logger = logging.getLogger("fund.services.settlement")

__all__ = [
    "SettleOutcome",
    "cycle_loss_units",
    "ranked_positions",
    "settlement_claim_alive",
    "settlement_compute",
    "settlement_cycle_close_now",
    "settlement_cycle_resend",
    "settlement_cycle_settle",
    "settlement_cycle_settle_now",
    "settlement_preview",
    "settlement_preview_record",
    "settlements_dead_claims",
]


def settlement_cycle_settle(
    *, cycle_id: int, now: datetime | None = None, ignore_grace: bool = False
) -> SettleOutcome:
    """Settles one cycle once. Returns posted=False when it was settled already. The worker's
    claim is held throughout (hold_cycle_claim: a second settlement of the cycle waits for this
    one, and a dead worker's claim is seen free: resend.py)."""
    with hold_cycle_claim(cycle_id=cycle_id):
        now = now or timezone.now()  # after any wait for another settlement of the cycle
        if not settlement_claim(cycle_id=cycle_id, now=now, ignore_grace=ignore_grace):
            return SettleOutcome(SettlementCycle.objects.get(pk=cycle_id), posted=False)
        try:
            outcome = settlement_post(cycle_id=cycle_id, now=now)
        except Exception as exc:
            settlement_fail(cycle_id=cycle_id, error=exc)
            raise
    if outcome.posted:  # the fund's log, signed with the settlement's records in it
        fund = outcome.cycle.fund
        after_books_commit(lambda: checkpoint_sign_after_settlement(fund=fund, cycle_id=cycle_id))
    return outcome
