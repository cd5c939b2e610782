"""Checking the books against themselves (manage.py verify_ledger).

- ledger_verify: every record's hash and running balance in order, the fund's published head
  and balance, and the running aggregates the pages read (per kind, per hour).
- cycles_verify: every settled cycle recomputed from its stored inputs (its takeovers' losses,
  its position profits, its own ratios and the balance B it was posted at) with the settlement's
  own computation (fund/computation.py, through fund.services.settlement), compared figure by
  figure with what it published; every apportionment and every trader statement compared with
  the recomputed share; the coverage record; the Merkle root.
- takeovers_verify: every takeover's engine result recomputed from its prices, quantity and
  margin (the intake's own formula), its liquidation-profit record and its cycle.

Each streams its rows in chunks: a cycle of a million participants is held in memory once, as
its settlement holds it, never as model instances.
"""

from collections.abc import Callable
from dataclasses import dataclass
from itertools import batched

from django.db.models import Q

from fund.chain import GENESIS, chain_next
from fund.merkle import cycle_leaves, merkle_root
from fund.models import (
    Apportionment,
    Fund,
    FundBalanceHour,
    FundKindTotal,
    FundRecord,
    LiquidationTakeover,
    LogCheckpoint,
    SettlementCycle,
)
from fund.services.liquidations import engine_result_units
from fund.services.settlement import ranked_positions, settlement_compute
from fund.services.settlement.posting import cycle_root
from fund.services.transparency import ENTRY_FIELDS, entry_of, log_size, log_tree
from fund.tlog import ProofError, RootBuilder, leaf_hash
from statements.models import Statement

CHUNK = 10_000
SHOWN = 20  # mismatching rows named per cycle (or per fund's takeovers); the rest are counted


@dataclass(frozen=True)
class ChainReport:
    fund: str
    records: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""
    aggregate_problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None and not self.aggregate_problems

    @property
    def problems(self) -> list[str]:
        chain = [f"record #{self.first_bad_seq}: {self.problem}"] if self.problem else []
        return chain + list(self.aggregate_problems)


@dataclass
class _Hour:
    open: int
    close: int
    low: int
    high: int
    inflow: int = 0
    outflow: int = 0
    records: int = 0


def ledger_verify(*, fund: Fund, progress: Callable[[int], object] | None = None) -> ChainReport:
    """Recomputes every record's hash in order; names the first record that does not match (its
    fields changed, a record before it went missing, or the order changed). With the chain
    intact, checks the fund's head and balance and its per-kind and per-hour aggregates."""
    asset = fund.asset
    previous, expected_seq, balance, count = GENESIS, 1, 0, 0
    kinds: dict[str, list[int]] = {}
    hours: dict = {}
    tree, signed = (
        RootBuilder(),
        dict(LogCheckpoint.objects.filter(fund=fund).values_list("size", "root_hash")),
    )
    log_problems: list[str] = []
    rows = FundRecord.objects.filter(fund=fund).order_by("seq").values_list(*ENTRY_FIELDS, "hash")
    for row in rows.iterator(chunk_size=5000):
        *fields, stored = row
        seq, kind, amount, after, created_at = fields[:5]
        count += 1
        if progress:
            progress(1)
        if seq != expected_seq:
            return ChainReport(
                asset.code, count, previous, expected_seq, f"record #{expected_seq} is missing"
            )
        before, balance = balance, balance + amount
        if after != balance:
            return ChainReport(
                asset.code, count, previous, seq, f"record #{seq}: balance after does not follow"
            )
        entry = entry_of(fields, asset=asset.code, precision=asset.precision)
        computed = chain_next(previous, entry)
        if computed != stored:
            return ChainReport(
                asset.code,
                count,
                previous,
                seq,
                f"record #{seq}: its hash does not match its content",
            )
        previous, expected_seq = stored, expected_seq + 1
        tree.append(leaf_hash(entry))
        if tree.count in signed and tree.root().hex() != signed[tree.count]:
            log_problems.append(
                f"the log's signed checkpoint of size {tree.count} is not the tree of its "
                f"first {tree.count} records"
            )
        total = kinds.setdefault(kind, [0, 0])
        total[0] += amount
        total[1] += 1
        hour = created_at.replace(minute=0, second=0, microsecond=0)
        row = hours.get(hour)
        if row is None:
            row = hours[hour] = _Hour(before, before, before, before)
        row.close, row.low, row.high = balance, min(row.low, balance), max(row.high, balance)
        if amount > 0:
            row.inflow += amount
        else:
            row.outflow -= amount
        row.records += 1
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
            f"the fund's balance is {fund.balance_units} units, its records sum to {balance}",
        )
    return ChainReport(
        asset.code,
        count,
        previous,
        aggregate_problems=_aggregates(fund, kinds, hours) + _log(fund, tree, signed, log_problems),
    )


def _log(fund: Fund, tree: RootBuilder, signed: dict, problems: list[str]) -> tuple[str, ...]:
    """The fund's transparency log against its records: its tiles hold the tree of exactly
    these records, and every signed checkpoint is the tree of the records up to its size."""
    beyond = sorted(size for size in signed if size > tree.count)
    if beyond:
        problems.append(
            f"the log has a signed checkpoint of size {beyond[-1]}, beyond its {tree.count} records"
        )
    size = log_size(fund)
    if size != tree.count:
        problems.append(f"the log's tiles hold {size} leaves, not its {tree.count} records")
    else:
        try:
            stored = log_tree(fund=fund, size=tree.count).root()
        except ProofError as exc:
            problems.append(f"the log's tiles are incomplete: {exc}")
        else:
            if stored != tree.root():
                problems.append("the log's tiles are not the tree of its records")
    return tuple(problems)


def _aggregates(fund: Fund, kinds: dict, hours: dict) -> tuple[str, ...]:
    """The running totals per kind and per hour (what the fund's page and charts read) against
    the ones the records give."""
    problems = []
    stored = {
        kind: [total, records]
        for kind, total, records in FundKindTotal.objects.filter(fund=fund).values_list(
            "kind", "total_units", "records"
        )
    }
    for kind in sorted(set(stored) | set(kinds)):
        have, want = stored.get(kind, [0, 0]), kinds.get(kind, [0, 0])
        if have != want:
            problems.append(
                f"the {kind} total is {have[0]} units over {have[1]} records; the records give "
                f"{want[0]} units over {want[1]}"
            )
    wrong = 0
    columns = ("open_units", "close_units", "low_units", "high_units")
    rows = FundBalanceHour.objects.filter(fund=fund).order_by("hour")
    for hour, opened, close, low, high, inflow, outflow, records in rows.values_list(
        "hour", *columns, "inflow_units", "outflow_units", "records"
    ).iterator(chunk_size=CHUNK):
        want = hours.pop(hour, None)
        have = _Hour(opened, close, low, high, inflow, outflow, records)
        if want != have:
            wrong += 1
            if wrong <= SHOWN:
                problems.append(
                    f"the balance history of {hour:%Y-%m-%d %H}:00 UTC is {have}; "
                    f"the records give {want}"
                )
    for hour in sorted(hours)[: max(0, SHOWN - wrong)]:
        problems.append(f"the balance history has no row for {hour:%Y-%m-%d %H}:00 UTC")
    wrong += len(hours)
    if wrong > SHOWN:
        problems.append(f"… and {wrong - SHOWN} more hours of balance history")
    return tuple(problems)


@dataclass(frozen=True)
class CyclesReport:
    fund: str
    cycles: int
    problems: tuple[str, ...] = ()
    first_bad_cycle: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem(self) -> str:
        return "; ".join(self.problems)


# The figures a settled cycle publishes (docs/rules.md §2 step 8): the cycle's field and the
# recomputed result's attribute.
FIGURES = (
    ("L (the loss)", "loss_units", "loss"),
    ("F (the fund's share)", "fund_share_units", "fund_share"),
    ("U (the users' share)", "users_share_units", "users_share"),
    ("P (the total profit)", "total_profit_units", "total_profit"),
    ("S (the participants' profit)", "participants_profit_units", "participants_profit"),
    ("the threshold profit", "threshold_profit_units", "threshold_profit"),
    ("Σ a (the apportioned loss)", "apportioned_units", "apportioned"),
    ("the backstop", "backstop_units", "backstop"),
    ("the uncovered loss", "uncovered_units", "uncovered"),
    ("the number of profitable positions", "profitable_count", "profitable_count"),
)


class _Named:
    """The mismatching rows of one cycle: the first SHOWN by name, the rest counted."""

    def __init__(self, problems: list[str], prefix: str):
        self.problems, self.prefix, self.count = problems, prefix, 0

    def add(self, text: str) -> None:
        self.count += 1
        if self.count <= SHOWN:
            self.problems.append(f"{self.prefix}{text}")

    def close(self, what: str) -> None:
        if self.count > SHOWN:
            self.problems.append(f"{self.prefix}… and {self.count - SHOWN} more {what}")


def cycles_verify(*, fund: Fund, progress: Callable[[int], object] | None = None) -> CyclesReport:
    """Recomputes every settled cycle of the fund from its stored inputs and compares every
    figure it published, each apportionment and each trader statement, its coverage record and
    its Merkle root; and checks that nothing was posted outside a settled cycle."""
    asset, count, problems, first_bad = fund.asset, 0, [], None
    settled = SettlementCycle.objects.filter(fund=fund, status=SettlementCycle.Status.SETTLED)
    unanchored: dict[int, list[int]] = {}  # B → cycles whose B no coverage record shows
    for cycle in settled.order_by("starts_at").iterator(chunk_size=200):
        count += 1
        if progress:
            progress(1)
        mine = _cycle_problems(cycle, fund, unanchored)
        if mine and first_bad is None:
            first_bad = cycle.id
        problems += mine
    held = _balances_held(fund, set(unanchored))
    for balance, cycle_ids in sorted(unanchored.items()):
        if balance not in held:
            for cycle_id in cycle_ids:
                problems.append(
                    f"cycle {cycle_id}: B (the balance at posting) is {balance} units, a balance "
                    "the fund's ledger never held"
                )
                first_bad = first_bad or cycle_id
    problems += _postings_outside_settled_cycles(fund, asset)
    return CyclesReport(asset.code, count, tuple(problems), first_bad)


def _cycle_problems(cycle: SettlementCycle, fund: Fund, unanchored: dict) -> list[str]:
    problems: list[str] = []
    prefix = f"cycle {cycle.id}: "
    balance = cycle.balance_before_units
    ranked = ranked_positions(cycle)
    try:
        result = settlement_compute(cycle, balance, ranked)
    except (TypeError, ValueError) as exc:  # a stored B that is missing or below zero
        return [f"{prefix}cannot be recomputed from B = {balance}: {exc}"]
    for label, column, attribute in FIGURES:
        stored, computed = getattr(cycle, column), getattr(result, attribute)
        if stored != computed:
            problems.append(
                f"{prefix}{label} is {stored}, its stored inputs give {computed} "
                f"(with B = {balance})"
            )
    if cycle.participant_count != len(result.participants):
        problems.append(
            f"{prefix}the number of participants is {cycle.participant_count}, "
            f"its stored inputs give {len(result.participants)}"
        )
    problems += _coverage_problems(cycle, result, prefix, unanchored)
    problems += _apportionment_problems(cycle, fund, result, prefix, ranked)
    return problems


def _coverage_problems(cycle, result, prefix: str, unanchored: dict) -> list[str]:
    """One settlement_coverage record of −(F + backstop), taken from the balance B; none when
    the fund paid nothing (then B must be a balance the ledger held)."""
    paid = result.fund_total
    coverage = list(
        FundRecord.objects.filter(
            cycle=cycle, kind=FundRecord.Kind.SETTLEMENT_COVERAGE
        ).values_list("seq", "amount_units", "balance_after_units")
    )
    if not coverage:
        if paid:
            return [f"{prefix}the fund paid {paid} units (F + backstop) but no coverage record"]
        unanchored.setdefault(cycle.balance_before_units, []).append(cycle.id)
        return []
    problems = []
    if len(coverage) > 1:
        problems.append(f"{prefix}{len(coverage)} coverage records (a cycle has at most one)")
    seq, amount, after = coverage[0]
    if amount != -paid:
        problems.append(
            f"{prefix}coverage record #{seq} is {amount} units; F + backstop recompute to {paid}"
        )
    if after - amount != cycle.balance_before_units:
        problems.append(
            f"{prefix}B is {cycle.balance_before_units} units; coverage record #{seq} was paid "
            f"from a balance of {after - amount}"
        )
    return problems


def _apportionment_problems(cycle, fund: Fund, result, prefix: str, ranked) -> list[str]:
    """Each stored apportionment and its statement against the recomputed share, in rank order;
    the Merkle root over them against the published one."""
    problems: list[str] = []
    named = _Named(problems, prefix)
    rows = (
        Apportionment.objects.filter(cycle=cycle)
        .order_by("rank")
        .values_list(
            "rank",
            "position__position_id",
            "position__profit_units",
            "position__cycle_id",
            "position__account_id",
            "amount_units",
            "rounding_unit",
            "statement_id",
            "statement__amount_units",
            "statement__account_id",
            "statement__asset_id",
            "statement__type",
        )
        .iterator(chunk_size=CHUNK)
    )
    participants, amounts, rounding = result.participants, result.amounts, result.rounding_units
    expected = len(participants)
    seen = 0
    leaves: list[bytes] = []
    for batch in batched(rows, CHUNK):
        leaf_rows = []
        for (
            rank,
            position_id,
            profit,
            position_cycle,
            account,
            amount,
            rounded,
            statement_id,
            statement_amount,
            statement_account,
            statement_asset,
            statement_type,
        ) in batch:
            i, seen = seen, seen + 1
            leaf_rows.append((rank, position_id, profit, amount))
            where = f"rank {rank} (position {position_id}): "
            if i >= expected:
                named.add(f"{where}an apportionment beyond the {expected} participants")
                continue
            if rank != i + 1 or position_id != participants[i] or position_cycle != cycle.id:
                named.add(
                    f"{where}rank {i + 1} recomputes to position {participants[i]} of this cycle"
                )
                continue
            if amount != amounts[i]:
                named.add(f"{where}the apportionment is {amount}, it recomputes to {amounts[i]}")
            if rounded != rounding[i]:
                named.add(
                    f"{where}the leftover-unit flag is {rounded}, it recomputes to {rounding[i]}"
                )
            if statement_amount != -amounts[i]:
                named.add(
                    f"{where}statement {statement_id} is {statement_amount}, the apportionment "
                    f"recomputes to {amounts[i]} (a statement of {-amounts[i]})"
                )
            if (statement_account, statement_asset, statement_type) != (
                account,
                fund.asset_id,
                Statement.Type.APPORTIONMENT,
            ):
                named.add(
                    f"{where}statement {statement_id} is not the position's account's "
                    f"{fund.asset.code} apportionment"
                )
        leaves += cycle_leaves(fund.asset.code, cycle.id, leaf_rows)
    if seen < expected:
        named.add(f"{expected - seen} of the {expected} recomputed apportionments are missing")
    named.close("mismatching apportionments")
    if named.count:
        problems.insert(
            0, f"{prefix}its apportionments are not the ones it published ({named.count} differ)"
        )
    if cycle.root_format == 1:
        root = merkle_root(leaves)
    else:
        try:
            root = cycle_root(fund.asset.code, cycle.id, ranked, amounts)
        except ValueError as exc:
            root = None
            problems.append(f"{prefix}its Merkle root cannot be rebuilt: {exc}")
    if root is not None and root != cycle.apportionment_root:
        problems.append(
            f"{prefix}its {'apportionments' if cycle.root_format == 1 else 'ranked positions'} "
            "do not give the published Merkle root"
        )
    return problems


def _balances_held(fund: Fund, wanted: set[int]) -> set[int]:
    """Which of `wanted` the fund's balance was at some moment (0 before its first record)."""
    held = {0} & wanted
    if wanted - held:
        afters = FundRecord.objects.filter(fund=fund).values_list("balance_after_units", flat=True)
        for after in afters.iterator(chunk_size=CHUNK):
            if after in wanted:
                held.add(after)
    return held


def _postings_outside_settled_cycles(fund: Fund, asset) -> list[str]:
    """Apportionments and coverage records belong to settled cycles only; every apportionment
    statement of the fund's asset to an apportionment."""
    problems = []
    for cycle_id, status in (
        Apportionment.objects.filter(cycle__fund=fund)
        .exclude(cycle__status=SettlementCycle.Status.SETTLED)
        .values_list("cycle_id", "cycle__status")
        .distinct()
    ):
        problems.append(f"cycle {cycle_id} is {status} but has apportionments")
    for seq, cycle_id in (
        FundRecord.objects.filter(fund=fund, kind=FundRecord.Kind.SETTLEMENT_COVERAGE)
        .filter(Q(cycle__isnull=True) | ~Q(cycle__status=SettlementCycle.Status.SETTLED))
        .values_list("seq", "cycle_id")
    ):
        problems.append(f"coverage record #{seq} belongs to no settled cycle (cycle {cycle_id})")
    orphans = Statement.objects.filter(asset=fund.asset, apportionment__isnull=True)
    orphan_ids = list(orphans.order_by("id").values_list("id", flat=True)[: SHOWN + 1])
    if orphan_ids:
        total = orphans.count() if len(orphan_ids) > SHOWN else len(orphan_ids)
        shown = ", ".join(map(str, orphan_ids[:SHOWN])) + (" …" if total > SHOWN else "")
        problems.append(f"{total} {asset.code} statement(s) belong to no apportionment: {shown}")
    return problems


@dataclass(frozen=True)
class TakeoversReport:
    fund: str
    takeovers: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def takeovers_verify(
    *, fund: Fund, progress: Callable[[int], object] | None = None
) -> TakeoversReport:
    """Recomputes every takeover's engine result from its stored prices, quantity, margin and
    contract (the intake's own formula): a profit has exactly its liquidation-profit record,
    anything else none; the takeover lies in its cycle, or after it when it came late."""
    asset, problems = fund.asset, []
    named = _Named(problems, "")
    rows = (
        LiquidationTakeover.objects.filter(fund=fund)
        .order_by("id")
        .values_list(
            "external_id",
            "side",
            "quantity",
            "takeover_price",
            "close_price",
            "remaining_margin_units",
            "engine_result_units",
            "closed_at",
            "late",
            "contract__kind",
            "contract__multiplier",
            "contract__margin_asset_id",
            "cycle__fund_id",
            "cycle__starts_at",
            "cycle__ends_at",
            "fund_record__seq",
            "fund_record__kind",
            "fund_record__amount_units",
            "fund_record__cycle_id",
            "cycle_id",
        )
    )
    count = 0
    for (
        external_id,
        side,
        quantity,
        takeover_price,
        close_price,
        margin,
        stored,
        closed_at,
        late,
        kind,
        multiplier,
        margin_asset,
        cycle_fund,
        starts_at,
        ends_at,
        record_seq,
        record_kind,
        record_amount,
        record_cycle,
        cycle_id,
    ) in rows.iterator(chunk_size=CHUNK):
        count += 1
        if progress:
            progress(1)
        where = f"takeover {external_id!r}: "
        computed = engine_result_units(
            kind=kind,
            side=side,
            quantity=quantity,
            multiplier=multiplier,
            takeover_price=takeover_price,
            close_price=close_price,
            remaining_margin_units=margin,
            precision=asset.precision,
        )
        if stored != computed:
            named.add(f"{where}the engine result is {stored}, its prices and size give {computed}")
        if margin_asset != fund.asset_id or cycle_fund != fund.id:
            named.add(f"{where}its contract or cycle is not of the {asset.code} fund")
        elif late != (closed_at < starts_at) or not closed_at < ends_at:
            named.add(
                f"{where}closed at {closed_at:%Y-%m-%d %H:%M:%S} outside its cycle {cycle_id}"
            )
        if computed > 0 and (record_kind, record_amount, record_cycle) != (
            FundRecord.Kind.LIQUIDATION_PROFIT,
            computed,
            cycle_id,
        ):
            named.add(
                f"{where}a profit of {computed} units, booked as "
                + (f"record #{record_seq} of {record_amount}" if record_seq else "no record")
            )
        elif computed <= 0 and record_seq is not None:
            named.add(f"{where}no profit, yet record #{record_seq} books {record_amount}")
    named.close("mismatching takeovers")
    unlinked = FundRecord.objects.filter(
        fund=fund, kind=FundRecord.Kind.LIQUIDATION_PROFIT, takeover__isnull=True
    ).values_list("seq", flat=True)
    for seq in unlinked[:SHOWN]:
        problems.append(f"liquidation profit record #{seq} has no takeover")
    return TakeoversReport(asset.code, count, tuple(problems))
