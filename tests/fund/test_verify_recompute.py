"""verify_ledger recomputes every settled cycle from its stored inputs (its takeovers and position
profits) with the settlement's own computation, and compares every figure, apportionment and
statement; it recomputes every takeover's engine result and checks the fund's running totals.
Each tampering below goes around the application with raw SQL, as an intruder with database
access would, and keeps every CHECK constraint satisfied."""

import pytest

from fund.models import Apportionment, LiquidationTakeover, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from fund.services.verify import cycles_verify, ledger_verify, takeovers_verify
from tests.helpers import at, book_loss, book_profit, deposit, report_profits, tamper
from tests.helpers import verify_ledger_output as verify

pytestmark = pytest.mark.django_db


def statement_of_rank(cycle, rank) -> int:
    return Apportionment.objects.get(cycle=cycle, rank=rank).statement_id


def test_intact_books_verify(world):
    result = verify()
    assert result.endswith("exit 0"), result
    assert "1 settled cycles, totals and Merkle roots match" in result
    assert "takeovers recomputed" in result


def test_it_names_a_trader_statement_changed_by_one_unit(world):
    statement = statement_of_rank(world.cycle, 1)
    tamper(
        "UPDATE statements_statement SET amount_units = amount_units - 1 WHERE id = %s", [statement]
    )
    result = verify()
    assert result.endswith("exit 1")
    assert (
        f"cycle {world.cycle.id}: rank 1 (position 1): statement {statement} is -26666666668, "
        "the apportionment recomputes to 26666666667"
    ) in result


def test_it_names_a_cycle_whose_loss_and_uncovered_loss_were_both_raised(world):
    """F + backstop + Σ a + uncovered = L still holds (the CHECK constraint is satisfied); the
    figures are false: the takeovers give another L."""
    tamper(
        "UPDATE fund_settlementcycle SET loss_units = loss_units + 1, "
        "uncovered_units = uncovered_units + 1 WHERE id = %s",
        [world.cycle.id],
    )
    result = verify()
    assert result.endswith("exit 1")
    assert (
        f"cycle {world.cycle.id}: L (the loss) is 50000000001, its stored inputs give 50000000000"
    ) in result
    assert f"cycle {world.cycle.id}: the uncovered loss is 1, its stored inputs give 0" in result


def test_it_names_a_cycle_whose_loss_takeover_was_doubled(world):
    tamper(
        "UPDATE fund_liquidationtakeover SET engine_result_units = engine_result_units * 2 "
        "WHERE cycle_id = %s AND engine_result_units < 0",
        [world.cycle.id],
    )
    result = verify()
    assert result.endswith("exit 1")
    assert (
        f"cycle {world.cycle.id}: L (the loss) is 50000000000, its stored inputs give 100000000000"
    ) in result
    takeover = LiquidationTakeover.objects.get(cycle=world.cycle)
    assert (
        f"takeover {takeover.external_id!r}: the engine result is -100000000000, "
        "its prices and size give -50000000000"
    ) in result


def test_it_names_a_takeover_whose_size_and_result_were_both_doubled(world):
    tamper(
        "UPDATE fund_liquidationtakeover SET engine_result_units = engine_result_units * 2, "
        "quantity = quantity * 2 WHERE cycle_id = %s",
        [world.cycle.id],
    )
    result = verify()
    assert f"cycle {world.cycle.id}: L (the loss) is 50000000000" in result
    assert result.endswith("exit 1")


def test_it_names_a_position_profit_changed_after_settlement(world):
    tamper(
        "UPDATE fund_positionprofit SET profit_units = profit_units + 100000000 "
        "WHERE cycle_id = %s AND position_id = 3",
        [world.cycle.id],
    )
    result = verify()
    assert f"cycle {world.cycle.id}: P (the total profit) is 100000000000" in result
    assert result.endswith("exit 1")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "UPDATE fund_apportionment SET rounding_unit = NOT rounding_unit "
            "WHERE rank = 2 AND cycle_id = %s",
            "rank 2 (position 2): the leftover-unit flag is True, it recomputes to False",
        ),
        (
            "UPDATE fund_settlementcycle SET threshold_profit_units = 1",
            "the threshold profit is 1, its stored inputs give 30000000000",
        ),
        (
            "UPDATE fund_settlementcycle SET profitable_count = 3",
            "the number of profitable positions is 3, its stored inputs give 4",
        ),
        (
            "UPDATE fund_settlementcycle SET participant_count = 3",
            "the number of participants is 3, its stored inputs give 2",
        ),
        (
            "UPDATE fund_settlementcycle SET balance_before_units = balance_before_units + 5",
            "B is 100000000005 units; coverage record #2 was paid from a balance of 100000000000",
        ),
        (
            "UPDATE fund_settlementcycle SET fund_share_units = fund_share_units - 1, "
            "uncovered_units = uncovered_units + 1",
            "F (the fund's share) is 9999999999, its stored inputs give 10000000000",
        ),
    ],
)
def test_it_names_every_other_false_figure(world, sql, expected):
    tamper(sql + (" WHERE id = %s" if "settlementcycle" in sql else ""), [world.cycle.id])
    result = verify()
    assert f"cycle {world.cycle.id}: {expected}" in result and result.endswith("exit 1"), result


def test_it_names_a_statement_that_belongs_to_no_apportionment(world):
    tamper(
        "INSERT INTO statements_statement (account_id, asset_id, type, amount_units, "
        "description, created_at) SELECT account_id, asset_id, type, -5, description, created_at "
        "FROM statements_statement WHERE id = %s",
        [statement_of_rank(world.cycle, 1)],
    )
    result = verify()
    assert "1 USDT statement(s) belong to no apportionment" in result
    assert result.endswith("exit 1")


def test_it_names_the_fund_balance_and_running_totals_changed(world):
    tamper("UPDATE fund_fund SET balance_units = balance_units + 1")
    assert "the fund's balance is 90000000001 units, its records sum to 90000000000" in verify()
    tamper("UPDATE fund_fund SET balance_units = balance_units - 1")
    tamper("UPDATE fund_fundkindtotal SET total_units = total_units + 1 WHERE kind = 'deposit'")
    tamper("UPDATE fund_fundbalancehour SET high_units = high_units + 1")
    result = verify()
    assert "the deposit total is 100000000001 units over 1 records" in result
    assert "the balance history of " in result and result.endswith("exit 1")


def test_it_names_a_profit_takeover_whose_result_or_record_changed(usdt_fund, linear):
    takeover = book_profit(linear, "3.5", at(0, 2))
    assert verify().endswith("exit 0")
    tamper(
        "UPDATE fund_liquidationtakeover SET engine_result_units = 1 WHERE id = %s", [takeover.id]
    )
    result = verify()
    assert (
        f"takeover {takeover.external_id!r}: the engine result is 1, its prices and size give"
        in (result)
    )
    tamper("UPDATE fund_liquidationtakeover SET engine_result_units = 350000000, "
           "remaining_margin_units = 700000000 WHERE id = %s", [takeover.id])  # fmt: skip
    result = verify()
    assert "a profit of 700000000 units, booked as record #1 of 350000000" in result


def test_it_names_a_forged_balance_of_a_cycle_the_fund_paid_nothing_for(usdt_fund, linear):
    """No loss: no coverage record shows the balance B; it must be one the ledger held."""
    deposit(usdt_fund, "10")
    book_profit(linear, "1", at(0, 2))
    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(cycle, linear, {1: "5"})
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    assert cycles_verify(fund=usdt_fund).ok
    tamper("UPDATE fund_settlementcycle SET balance_before_units = 1 WHERE id = %s", [cycle.id])
    report = cycles_verify(fund=usdt_fund)
    assert report.problems == (
        f"cycle {cycle.id}: B (the balance at posting) is 1 units, a balance the fund's ledger "
        "never held",
    )


def test_each_mismatch_is_named_and_a_large_cycle_lists_a_bounded_number(usdt_fund, linear):
    deposit(usdt_fund, "0.00000001")
    book_loss(linear, "1", at(0, 10))
    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(cycle, linear, dict.fromkeys(range(1, 61), "1"))
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    usdt_fund.refresh_from_db()
    assert cycles_verify(fund=usdt_fund).ok and ledger_verify(fund=usdt_fund).ok
    assert takeovers_verify(fund=usdt_fund).ok
    tamper("UPDATE statements_statement SET amount_units = amount_units - 1")
    problems = cycles_verify(fund=usdt_fund).problems
    assert problems[0] == (
        f"cycle {cycle.id}: its apportionments are not the ones it published (54 differ)"
    )
    assert len(problems) == 1 + 20 + 1 and problems[-1].endswith(
        "… and 34 more mismatching apportionments"
    )
