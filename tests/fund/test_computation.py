"""compute_settlement against docs/rules.md §2, on plain numbers."""

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fund.computation import compute_settlement

P8 = 10**8


def settle(loss, balance, positions, fund_ratio="0.2", screening_ratio="0.9"):
    return compute_settlement(
        loss=loss,
        balance=balance,
        fund_ratio=Decimal(fund_ratio),
        screening_ratio=Decimal(screening_ratio),
        positions=positions,
    )


def test_it_settles_the_worked_example_exactly():
    r = settle(500 * P8, 1000 * P8, [(1, 600 * P8), (2, 300 * P8), (3, 80 * P8), (4, 20 * P8)])
    assert r.fund_share == 100 * P8
    assert r.users_share == 400 * P8
    assert r.participants == [1, 2]
    assert r.amounts == [26666666667, 13333333333]
    assert r.rounding_units == [True, False]
    assert r.total_profit == 1000 * P8 and r.participants_profit == 900 * P8
    assert r.threshold_profit == 300 * P8
    assert r.backstop == 0 and r.uncovered == 0
    assert r.balance - r.fund_total == 900 * P8


def test_it_shares_nothing_without_a_loss():
    r = settle(0, 1000, [(1, 600), (2, 300)])
    assert (r.fund_share, r.users_share, r.participants, r.backstop, r.uncovered) == (
        0,
        0,
        [],
        0,
        0,
    )
    assert r.total_profit == 900


def test_it_backstops_a_loss_with_no_profitable_position_and_leaves_the_rest_uncovered():
    r = settle(1000, 300, [(1, 0), (2, -50)])
    assert r.fund_share == 200 and r.participants == []
    assert r.backstop == 100 and r.uncovered == 700
    assert r.fund_total == 300


def test_it_charges_nothing_to_an_empty_fund():
    r = settle(500, 0, [(1, 1000)])
    assert r.fund_share == 0 and r.users_share == 500
    assert r.participants == [1] and r.amounts == [500]


def test_it_lets_one_participant_bear_the_whole_users_share():
    r = settle(100, 1000, [(7, 5000)])
    assert r.participants == [7] and r.amounts == [80] and r.threshold_profit == 5000


def test_it_caps_every_participant_at_its_profit_and_backstops_the_excess():
    r = settle(10_000, 1_000, [(1, 3000), (2, 1000), (3, 10)], screening_ratio="0.9")
    # F = 1000 (capped at B... 20 % of 10,000 is 2,000 > B), U = 9,000; S = 4,000.
    assert r.fund_share == 1000 and r.users_share == 9000
    assert r.participants == [1, 2] and r.amounts == [3000, 1000]
    assert r.backstop == 0 and r.uncovered == 5000


def test_it_breaks_ties_at_the_threshold_by_lower_position_id():
    r = settle(100, 0, [(9, 50), (3, 50), (5, 50), (1, 10)], screening_ratio="0.5")
    # P = 160, target 80: 50 (id 3), 100 (id 5) reaches it.
    assert r.participants == [3, 5]
    assert r.amounts == [50, 50]


def test_it_hands_leftover_units_by_largest_remainder_then_rank():
    r = settle(2, 0, [(1, 1), (2, 1), (3, 1)], screening_ratio="1")
    # U = 2 over S = 3: each share is 2/3, all remainders equal: ranks 1 and 2 get the units.
    assert r.amounts == [1, 1, 0] and r.rounding_units == [True, True, False]


def test_it_works_at_the_smallest_unit():
    r = settle(1, 0, [(1, 1)])
    assert r.fund_share == 0 and r.amounts == [1]


@pytest.mark.parametrize("ratio", ["-0.1", "1.01"])
def test_it_refuses_a_ratio_outside_zero_to_one(ratio):
    with pytest.raises(ValueError):
        settle(1, 1, [], fund_ratio=ratio)


def test_it_takes_one_participant_with_a_screening_ratio_of_zero_and_all_with_one():
    positions = [(1, 5), (2, 4), (3, 1)]
    assert settle(10, 0, positions, screening_ratio="0").participants == [1]
    assert settle(10, 0, positions, screening_ratio="1").participants == [1, 2, 3]


ratios = st.one_of(
    st.sampled_from([Decimal(0), Decimal(1), Decimal("0.2"), Decimal("0.9")]),
    st.decimals(min_value=0, max_value=1, places=4),
)
amount = st.integers(min_value=1, max_value=10**12)


@st.composite
def cycles(draw):
    precision = draw(st.integers(0, 18))
    scale = draw(st.sampled_from([1, 10**precision]))
    top = 10**12 * scale
    n = draw(st.one_of(st.integers(0, 12), st.integers(0, 300)))
    profits = draw(st.lists(st.integers(-(10**6), top), min_size=n, max_size=n))
    if profits and draw(st.booleans()):  # ties
        profits = [profits[i % 3] for i in range(len(profits))]
    ids = draw(st.permutations(range(1, n + 1)))
    loss = draw(st.one_of(st.just(0), st.integers(1, top)))
    balance = draw(st.one_of(st.just(0), st.integers(1, top)))
    return {
        "loss": loss,
        "balance": balance,
        "positions": list(zip(ids, profits)),
        "fund_ratio": draw(ratios),
        "screening_ratio": draw(ratios),
    }


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles())
def test_it_keeps_every_invariant_on_generated_cycles(case):
    r = compute_settlement(**case)
    loss, balance = case["loss"], case["balance"]
    profit = dict(case["positions"])
    # F + backstop + Σ a_i + uncovered = L
    assert r.fund_share + r.backstop + sum(r.amounts) + r.uncovered == loss
    assert r.fund_share == min(math.floor(loss * Fraction(case["fund_ratio"])), balance)
    # 0 <= a_i <= p_i and the fund never goes below zero
    assert all(0 <= a <= profit[pid] for pid, a in zip(r.participants, r.amounts))
    assert 0 <= r.fund_total <= balance
    assert r.uncovered >= 0 and r.backstop >= 0
    # participants are exactly the screened prefix of the ranking
    ranking = sorted(
        (pid for pid, p in case["positions"] if p > 0), key=lambda pid: (-profit[pid], pid)
    )
    total = sum(profit[pid] for pid in ranking)
    if r.users_share == 0 or not ranking:
        assert r.participants == []
    else:
        k = len(r.participants)
        assert r.participants == ranking[:k]
        target = Fraction(case["screening_ratio"]) * total
        assert sum(profit[pid] for pid in ranking[:k]) >= target
        assert k == 1 or sum(profit[pid] for pid in ranking[: k - 1]) < target
        # pro rata: each a_i is U·p_i/S rounded down, plus at most one unit
        for pid, a in zip(r.participants, r.amounts):
            exact = min(r.users_share, r.participants_profit) * profit[pid]
            assert abs(a * r.participants_profit - exact) < r.participants_profit
    # an uncovered loss only when the fund is empty after paying
    if r.uncovered:
        assert r.fund_total == balance


@settings(max_examples=400, deadline=None)
@given(
    loss=st.integers(0, 10**6),
    before=st.integers(0, 10**6),
    after=st.integers(0, 10**6),
    ratio=st.sampled_from(["0", "0.2", "0.5", "1"]),
    profits=st.lists(st.integers(1, 10**5), max_size=8),
)
def test_a_result_carried_to_a_new_balance_is_the_one_computed_for_it(
    loss, before, after, ratio, profits
):
    """The settlement posts without the fund's lock and takes the balance read under it at the
    end: the result it keeps must be exactly the one computed for that balance, else it starts
    again."""
    from dataclasses import replace

    from fund.computation import settlement_at_balance

    positions = list(enumerate(profits, start=1))
    first = compute_settlement(
        loss=loss, balance=before, fund_ratio=ratio, screening_ratio="0.9", positions=positions
    )
    fresh = compute_settlement(
        loss=loss, balance=after, fund_ratio=ratio, screening_ratio="0.9", positions=positions
    )
    kept = settlement_at_balance(first, balance=after, fund_ratio=ratio)
    if kept is None:
        assert (first.fund_share, first.backstop) != (fresh.fund_share, fresh.backstop)
    else:
        assert kept == fresh == replace(first, balance=after)
