"""Reads that feed pages, the API and commands."""

from fund.models import Fund, FundRecord, SettlementCycle


def fund_overview() -> list[dict]:
    """Each fund with its contracts, its current cycle and its latest settled cycle."""
    funds = list(Fund.objects.select_related("asset").prefetch_related("asset__contracts"))
    current, latest = {}, {}
    for cycle in SettlementCycle.objects.filter(status=SettlementCycle.Status.OPEN).order_by("starts_at"):
        current.setdefault(cycle.fund_id, cycle)
    for fund in funds:
        latest[fund.id] = fund.cycles.filter(status=SettlementCycle.Status.SETTLED).order_by("-starts_at").first()
    return [{"fund": fund, "current": current.get(fund.id), "latest_settled": latest[fund.id]} for fund in funds]


def records_latest(*, limit: int = 12) -> list[FundRecord]:
    """The newest fund records of all funds, newest first."""
    return list(FundRecord.objects.select_related("fund__asset").order_by("-created_at", "-id")[:limit])


def cycles_latest_settled(*, limit: int = 12) -> list[SettlementCycle]:
    return list(
        SettlementCycle.objects.select_related("fund__asset")
        .filter(status=SettlementCycle.Status.SETTLED)
        .order_by("-settled_at", "fund__asset__code")[:limit]
    )
