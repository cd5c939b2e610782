"""Checking a fund's ledger against its hash chain (manage.py verify_ledger)."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count, Sum

from fund.chain import GENESIS, record_hash
from fund.merkle import merkle_root
from fund.models import Fund, FundRecord, SettlementCycle
from fund.proofs import cycle_apportionment_leaves


@dataclass(frozen=True)
class ChainReport:
    fund: str
    records: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def ledger_verify(*, fund: Fund, progress: Callable[[int], object] | None = None) -> ChainReport:
    """Recomputes every record's hash in order; names the first record that does not match (its
    fields changed, a record before it went missing, or the order changed)."""
    asset = fund.asset
    previous, expected_seq, balance, count = GENESIS, 1, 0, 0
    rows = (
        FundRecord.objects.filter(fund=fund)
        .order_by("seq")
        .values_list(
            "seq",
            "kind",
            "amount_units",
            "balance_after_units",
            "created_at",
            "takeover__external_id",
            "cycle_id",
            "corrects_id",
            "reason",
            "hash",
        )
    )
    for (
        seq,
        kind,
        amount,
        after,
        created_at,
        takeover,
        cycle_id,
        corrects_id,
        reason,
        stored,
    ) in rows.iterator(chunk_size=5000):
        count += 1
        if progress:
            progress(1)
        if seq != expected_seq:
            return ChainReport(
                asset.code, count, previous, expected_seq, f"record #{expected_seq} is missing"
            )
        balance += amount
        if after != balance:
            return ChainReport(
                asset.code, count, previous, seq, f"record #{seq}: balance after does not follow"
            )
        computed = record_hash(
            previous=previous,
            asset=asset.code,
            precision=asset.precision,
            seq=seq,
            kind=kind,
            amount_units=amount,
            balance_after_units=after,
            created_at=created_at,
            takeover=takeover or "",
            cycle_id=cycle_id,
            corrects_id=corrects_id,
            reason=reason,
        )
        if computed != stored:
            return ChainReport(
                asset.code,
                count,
                previous,
                seq,
                f"record #{seq}: its hash does not match its content",
            )
        previous, expected_seq = stored, expected_seq + 1
    if fund.head_hash != (previous if count else ""):  # a fund without records has no head yet
        return ChainReport(
            asset.code,
            count,
            previous,
            expected_seq,
            "the fund's published head is not the last record's hash",
        )
    if fund.balance_units != balance:
        return ChainReport(
            asset.code,
            count,
            previous,
            expected_seq,
            "the fund's balance is not the sum of its records",
        )
    return ChainReport(asset.code, count, previous)


@dataclass(frozen=True)
class CyclesReport:
    fund: str
    cycles: int
    first_bad_cycle: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_cycle is None


def cycles_verify(*, fund: Fund, progress: Callable[[int], object] | None = None) -> CyclesReport:
    """Checks every settled cycle of the fund against what it published: its totals add up
    (F + backstop + Σ a + uncovered = L), its apportionments are the ones it counted and summed,
    and their Merkle root is the published one."""
    asset, count = fund.asset.code, 0
    settled = SettlementCycle.objects.filter(
        fund=fund, status=SettlementCycle.Status.SETTLED
    ).select_related("fund__asset")
    for cycle in settled.order_by("starts_at").iterator(chunk_size=200):
        count += 1
        if progress:
            progress(1)
        if (
            cycle.fund_share_units
            + cycle.backstop_units
            + cycle.apportioned_units
            + cycle.uncovered_units
            != cycle.loss_units
        ):
            return CyclesReport(
                asset, count, cycle.id, f"cycle {cycle.id}: F + backstop + Σ a + uncovered is not L"
            )
        booked = cycle.apportionments.aggregate(n=Count("id"), total=Sum("amount_units"))
        if (
            booked["n"] != cycle.participant_count
            or (booked["total"] or 0) != cycle.apportioned_units
        ):
            return CyclesReport(
                asset,
                count,
                cycle.id,
                f"cycle {cycle.id}: its apportionments are not the ones it published",
            )
        root = merkle_root(cycle_apportionment_leaves(cycle=cycle))
        if root != cycle.apportionment_root:
            return CyclesReport(
                asset,
                count,
                cycle.id,
                f"cycle {cycle.id}: its apportionments do not give the published Merkle root",
            )
    return CyclesReport(asset, count)
