"""Reads that feed pages, the API and commands."""

from fund.models import Fund, SettlementCycle


def fund_overview() -> list[dict]:
    """Each fund with its balance and its latest settled cycle."""
    funds = list(Fund.objects.select_related("asset").prefetch_related("asset__contracts"))
    latest = {}
    for cycle in SettlementCycle.objects.filter(status=SettlementCycle.Status.SETTLED).order_by("fund_id", "-starts_at").distinct():
        latest.setdefault(cycle.fund_id, cycle)
    return [{"fund": fund, "latest_settled": latest.get(fund.id)} for fund in funds]
