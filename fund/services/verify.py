"""Checking a fund's ledger against its hash chain (manage.py verify_ledger)."""

from dataclasses import dataclass
from typing import Callable

from fund.chain import GENESIS, record_hash
from fund.models import Fund, FundRecord


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
        FundRecord.objects.filter(fund=fund).order_by("seq")
        .values_list("seq", "kind", "amount_units", "balance_after_units", "created_at", "takeover__external_id",
                     "cycle_id", "corrects_id", "reason", "hash")
    )
    for seq, kind, amount, after, created_at, takeover, cycle_id, corrects_id, reason, stored in rows.iterator(chunk_size=5000):
        count += 1
        if progress:
            progress(1)
        if seq != expected_seq:
            return ChainReport(asset.code, count, previous, expected_seq, f"record #{expected_seq} is missing")
        balance += amount
        if after != balance:
            return ChainReport(asset.code, count, previous, seq, f"record #{seq}: balance after does not follow")
        computed = record_hash(previous=previous, asset=asset.code, precision=asset.precision, seq=seq, kind=kind,
                               amount_units=amount, balance_after_units=after, created_at=created_at,
                               takeover=takeover or "", cycle_id=cycle_id, corrects_id=corrects_id, reason=reason)
        if computed != stored:
            return ChainReport(asset.code, count, previous, seq, f"record #{seq}: its hash does not match its content")
        previous, expected_seq = stored, expected_seq + 1
    if fund.head_hash != previous:
        return ChainReport(asset.code, count, previous, expected_seq, "the fund's published head is not the last record's hash")
    if fund.balance_units != balance:
        return ChainReport(asset.code, count, previous, expected_seq, "the fund's balance is not the sum of its records")
    return ChainReport(asset.code, count, previous)
