"""docs/rules.md §2's invariants on generated cycles, settled through the services into the
real database (SQLite in `make test`, PostgreSQL in .ci/run's second pass)."""

import itertools
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fund.models import SettlementCycle
from fund.services.ledger import fund_deposit
from fund.services.liquidations import TakeoverInput, liquidations_record
from fund.services.settlement import settlement_cycle_settle
from statements.money import format_units
from tests.factories import AssetFactory, ContractFactory, FundFactory
from tests.helpers import assert_books_hold, at, report_profits

pytestmark = pytest.mark.django_db
_codes = itertools.count(1)


def book_result(contract, result_units: int, precision: int, closed_at, external_id: str):
    """A takeover whose engine result is exactly `result_units`: a long with no margin left,
    closed |result| lower (a loss), or closed flat with the result as remaining margin (a
    profit)."""
    amount = format_units(abs(result_units), precision)
    price = {
        "takeover_price": str(Decimal(amount) + 1),
        "close_price": "1",
        "remaining_margin": "0",
    }
    if result_units > 0:
        price = {"takeover_price": "1", "close_price": "1", "remaining_margin": amount}
    liquidations_record(
        items=[
            TakeoverInput(
                external_id=external_id,
                contract=contract.symbol,
                side="long",
                quantity="1",
                taken_over_at=closed_at - timedelta(minutes=1),
                closed_at=closed_at,
                **price,
            )
        ]
    )


@st.composite
def cycles(draw):
    precision = draw(st.sampled_from([0, 2, 8]))
    top = 10**6 * 10**precision  # prices carry at most 7 digits before the point
    unit = st.integers(min_value=1, max_value=top)
    n = draw(st.integers(0, 40))
    profits = draw(st.lists(st.integers(-(10**precision), top), min_size=n, max_size=n))
    if profits and draw(st.booleans()):  # ties
        profits = [profits[i % 2] for i in range(n)]
    return {
        "precision": precision,
        "deposit": draw(st.one_of(st.just(0), unit)),
        "results": draw(st.lists(st.one_of(unit, unit.map(lambda u: -u)), max_size=4)),
        "profits": dict(zip(draw(st.permutations(range(1, n + 1))), profits)),
        "fund_ratio": draw(st.sampled_from(["0", "0.2", "0.5", "1"])),
        "screening_ratio": draw(st.sampled_from(["0", "0.5", "0.9", "1"])),
    }


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cycles())
def test_it_keeps_every_invariant_when_settling_generated_cycles(case):
    code = f"P{next(_codes)}"
    asset = AssetFactory(code=code, precision=case["precision"])
    fund = FundFactory(
        asset=asset,
        fund_ratio=Decimal(case["fund_ratio"]),
        screening_ratio=Decimal(case["screening_ratio"]),
    )
    contract = ContractFactory(symbol=f"{code}PERP", margin_asset=asset)
    if case["deposit"]:
        fund_deposit(
            asset_code=code,
            amount=format_units(case["deposit"], case["precision"]),
            reason="seed",
            now=at(0, 1),
        )
    for i, result in enumerate(case["results"]):
        book_result(contract, result, case["precision"], at(0, 2 + i), f"{code}-{i}")
    cycle, _ = SettlementCycle.objects.get_or_create(
        fund=fund,
        starts_at=at(0),
        defaults={
            "ends_at": at(1),
            "grace_seconds": 300,
            "fund_ratio": fund.fund_ratio,
            "screening_ratio": fund.screening_ratio,
        },
    )
    if case["profits"]:
        report_profits(
            cycle,
            contract,
            {pid: format_units(p, case["precision"]) for pid, p in case["profits"].items()},
            account_prefix=code,
        )
    assert settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after).posted

    cycle.refresh_from_db()
    loss = -sum(r for r in case["results"] if r < 0)
    apportionments = list(cycle.apportionments.select_related("position").order_by("rank"))
    assert cycle.loss_units == loss
    # F + backstop + Σ a_i + uncovered = L; 0 <= a_i <= p_i; one statement per participant, for
    # its account, of -a_i; the fund never goes below zero and its balance is the sum of its
    # records; the hourly balance rows the charts read agree with the ledger; the coverage
    # records are what the fund paid.
    assert_books_hold(fund)
    # Participants are exactly the screened prefix of the ranking.
    ranking = sorted(
        (pid for pid, p in case["profits"].items() if p > 0),
        key=lambda pid: (-case["profits"][pid], pid),
    )
    participants = [a.position.position_id for a in apportionments]
    assert participants == ranking[: len(participants)]
    if participants:
        target = Fraction(case["screening_ratio"]) * sum(case["profits"][pid] for pid in ranking)
        profit_of = [case["profits"][pid] for pid in participants]
        assert sum(profit_of) >= target
        assert len(participants) == 1 or sum(profit_of[:-1]) < target
    else:
        assert cycle.users_share_units == 0 or not ranking
