"""A settlement preview: the result of settling a cycle now, computed by the same function and
posting nothing."""

from fund.computation import SettlementResult
from fund.errors import ConflictError
from fund.models import AdminAction, SettlementCycle
from fund.services.audit import Audit, admin_action_record
from fund.services.locks import books_transaction
from fund.services.settlement.posting import ranked_positions, settlement_compute


def settlement_preview(*, cycle_id: int) -> SettlementResult:
    """The result of settling the cycle now at the fund's current balance; writes nothing."""
    cycle = SettlementCycle.objects.select_related("fund").get(pk=cycle_id)
    return settlement_compute(cycle, cycle.fund.balance_units, ranked_positions(cycle))


@books_transaction
def settlement_preview_record(*, cycle_id: int, audit: Audit) -> SettlementResult:
    """A preview that staff asked for (console or API), recorded in the audit trail."""
    cycle = SettlementCycle.objects.select_related("fund__asset").get(pk=cycle_id)
    if cycle.status == SettlementCycle.Status.SETTLED:
        raise ConflictError(
            f"Cycle {cycle.id} is settled: its report shows what was posted.", code="cycle_settled"
        )
    result = settlement_preview(cycle_id=cycle_id)
    admin_action_record(
        audit=audit,
        action=AdminAction.Action.PREVIEW,
        fund=cycle.fund,
        cycle=cycle,
        details={"loss": cycle.fund.asset.format(result.loss)},
    )
    return result
