"""The exchange applies a settled cycle's apportionments to its traders' balances and says so:
the count, total and root it applied must be the cycle's; the first acknowledgement is kept
(append-only), emits `cycle.applied`, and the same one again answers the same."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from fund.errors import ConflictError
from fund.models import CycleApplication, Event, SettlementCycle
from fund.pagecache import books_changed
from fund.services.outbox import cycle_event_data, event_emit


@dataclass(frozen=True)
class Applied:
    application: CycleApplication
    created: bool


def expected_figures(cycle: SettlementCycle) -> dict:
    """What an acknowledgement of the cycle must say: its participants, their total, its root."""
    return {
        "count": cycle.participant_count,
        "total": cycle.fund.asset.format(cycle.apportioned_units),
        "root": cycle.apportionment_root,
    }


def cycle_apply(
    *, cycle: SettlementCycle, count: int, total_units: int, root: str, token, now=None
) -> Applied:
    """Records that the exchange applied the cycle; ConflictError (409) when the cycle is not
    settled or the figures are not its own, naming the expected ones."""
    if cycle.status != SettlementCycle.Status.SETTLED:
        raise ConflictError(
            f"Cycle {cycle.id} is {cycle.get_status_display().lower()}: only a settled cycle's "
            "apportionments can be applied.",
            code="cycle_not_settled",
        )
    expected = expected_figures(cycle)
    said = (count, total_units, root)
    if said != (cycle.participant_count, cycle.apportioned_units, cycle.apportionment_root):
        raise ConflictError(
            f"These are not cycle {cycle.id}'s apportionments: it has {expected['count']} "
            f"totalling {expected['total']} under the root {expected['root'] or '(none)'}.",
            code="figures_mismatch",
            details={"expected": expected},
        )
    existing = CycleApplication.objects.filter(cycle=cycle).first()
    if existing is not None:
        return Applied(existing, created=False)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            application = CycleApplication.objects.create(
                cycle=cycle, count=count, total_units=total_units, root=root, token=token,
                applied_at=now,
            )  # fmt: skip
            event_emit(
                Event.Kind.CYCLE_APPLIED,
                fund=cycle.fund,
                cycle=cycle,
                data={**cycle_event_data(cycle), **expected, "applied_at": now.isoformat()},
            )
            books_changed()
    except IntegrityError:  # another acknowledgement of the same figures was first
        return Applied(CycleApplication.objects.get(cycle=cycle), created=False)
    return Applied(application, created=True)
