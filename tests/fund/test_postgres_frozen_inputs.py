"""A settled cycle's inputs are frozen like the books (migration 0012, PostgreSQL): its takeovers
and position profits cannot be changed, removed or added to; a cycle that stopped taking input
never takes it again; the fund's balance and chain head move only with an appended record, and
each appended record's running balance follows the one before it. Each statement goes around
the application, as an intruder with the application's database access would, with the
maintenance switch off (tests/fund/test_postgres_roles.py: it is the owner's alone)."""

import pytest
from django.db import connection, transaction

from fund.models import Fund, FundRecord, LiquidationTakeover, PositionProfit, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.ledger import fund_record_correct, fund_withdraw
from fund.services.settlement import settlement_cycle_settle
from fund.services.settlement.claim import settlement_claim
from fund.services.verify import cycles_verify, ledger_verify, takeovers_verify
from tests.helpers import assert_books_hold, at, book_loss, book_profit, deposit, report_profits

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NEXT_STATEMENT = (
    "INSERT INTO statements_statement (account_id, asset_id, type, amount_units, description, "
    "created_at) SELECT account_id, asset_id, type, -1, description, created_at "
    "FROM statements_statement LIMIT 1"
)
TAKEOVER_COLUMNS = (
    "external_id, contract_id, fund_id, side, quantity, takeover_price, close_price, "
    "remaining_margin_units, engine_result_units, taken_over_at, closed_at, cycle_id, late, "
    "received_at"
)

REFUSED = {
    # The three tamperings verify_ledger also names (tests/fund/test_verify_recompute.py).
    "a statement changed by one unit": [
        "UPDATE statements_statement SET amount_units = amount_units - 1"
    ],
    "the loss and the uncovered loss raised": [
        "UPDATE fund_settlementcycle SET loss_units = loss_units + 1, "
        "uncovered_units = uncovered_units + 1 WHERE status = 'settled'"
    ],
    "a loss takeover doubled": [
        "UPDATE fund_liquidationtakeover SET engine_result_units = engine_result_units * 2 "
        "WHERE engine_result_units < 0"
    ],
    # The inputs.
    "a takeover removed": ["DELETE FROM fund_liquidationtakeover WHERE engine_result_units < 0"],
    "takeovers truncated": ["TRUNCATE fund_liquidationtakeover CASCADE"],
    "a position profit raised": ["UPDATE fund_positionprofit SET profit_units = profit_units + 1"],
    "a position profit removed": ["DELETE FROM fund_positionprofit WHERE position_id = 4"],
    "a position profit added to the settled cycle": [
        "INSERT INTO fund_positionprofit (cycle_id, position_id, account_id, contract_id, "
        "profit_units, received_at) SELECT cycle_id, 99, account_id, contract_id, profit_units, "
        "received_at FROM fund_positionprofit LIMIT 1"
    ],
    "a takeover added to the settled cycle": [
        f"INSERT INTO fund_liquidationtakeover ({TAKEOVER_COLUMNS}) SELECT 'forged', "
        "contract_id, fund_id, side, quantity, takeover_price, close_price, "
        "remaining_margin_units, engine_result_units, taken_over_at, closed_at, cycle_id, late, "
        "received_at FROM fund_liquidationtakeover LIMIT 1"
    ],
    # The postings.
    "an apportionment added to the settled cycle": [
        NEXT_STATEMENT,
        "INSERT INTO fund_apportionment (cycle_id, position_id, statement_id, rank, amount_units, "
        "rounding_unit) SELECT p.cycle_id, p.id, (SELECT max(id) FROM statements_statement), 3, "
        "0, false FROM fund_positionprofit p WHERE p.position_id = 3",
    ],
    # The fund's balance and head.
    "the fund's balance raised": ["UPDATE fund_fund SET balance_units = balance_units + 1"],
    "the fund's chain head replaced": ["UPDATE fund_fund SET head_hash = repeat('0', 64)"],
    "a fund opened with a balance": [
        "INSERT INTO statements_asset (code, name, precision) VALUES ('XX', '', 2)",
        "INSERT INTO fund_fund (asset_id, balance_units, head_hash, cycle_seconds, anchor, "
        "grace_seconds, fund_ratio, screening_ratio, updated_at) SELECT a.id, 5, '', 86400, "
        "now(), 300, 0.2, 0.9, now() FROM statements_asset a WHERE a.code = 'XX'",
    ],
    "a record whose running balance does not follow": [
        "INSERT INTO fund_fundrecord (fund_id, seq, kind, amount_units, balance_after_units, "
        "created_at, reason, hash) SELECT fund_id, seq + 1, 'deposit', 1, balance_after_units + 2, "
        "created_at, 'forged', '' FROM fund_fundrecord ORDER BY seq DESC LIMIT 1"
    ],
    "a record that leaves a gap": [
        "INSERT INTO fund_fundrecord (fund_id, seq, kind, amount_units, balance_after_units, "
        "created_at, reason, hash) SELECT fund_id, seq + 2, 'deposit', 1, balance_after_units + 1, "
        "created_at, 'forged', '' FROM fund_fundrecord ORDER BY seq DESC LIMIT 1"
    ],
}


def snapshot():
    return (
        list(Fund.objects.values().order_by("id")),
        list(FundRecord.objects.values_list("id", "amount_units", "balance_after_units")),
        list(LiquidationTakeover.objects.values().order_by("id")),
        list(PositionProfit.objects.values().order_by("id")),
        list(SettlementCycle.objects.values().order_by("id")),
    )


@pytest.mark.parametrize("statements", REFUSED.values(), ids=REFUSED.keys())
def test_it_refuses_to_change_a_settled_cycles_inputs_or_the_funds_balance(world, statements):
    before = snapshot()
    with pytest.raises(Exception, match="is refused"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL fund.allow_maintenance = 'off'")
            for statement in statements:
                cursor.execute(statement)
    assert snapshot() == before


@pytest.fixture
def claimed(world, linear):
    """A second cycle claimed for settlement (settling): it takes no more input."""
    book_loss(linear, "5", at(1, 10))
    cycle = SettlementCycle.objects.get(starts_at=at(1))
    report_profits(cycle, linear, {10: "50"})
    cycles_close_due(now=cycle.settle_after)
    assert settlement_claim(cycle_id=cycle.id, now=cycle.settle_after, ignore_grace=False)
    return SettlementCycle.objects.get(pk=cycle.pk)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE fund_settlementcycle SET status = 'open' WHERE id = %s",
        "UPDATE fund_settlementcycle SET status = 'closed' WHERE id = %s",
        "UPDATE fund_settlementcycle SET fund_ratio = 0 WHERE id = %s",
        "UPDATE fund_settlementcycle SET ends_at = ends_at + interval '1 day' WHERE id = %s",
        "DELETE FROM fund_settlementcycle WHERE id = %s",
        "UPDATE fund_positionprofit SET profit_units = 1 WHERE cycle_id = %s",
        "INSERT INTO fund_positionprofit (cycle_id, position_id, account_id, contract_id, "
        "profit_units, received_at) SELECT %s, 99, account_id, contract_id, 7, received_at "
        "FROM fund_positionprofit LIMIT 1",
    ],
)
def test_a_cycle_that_stopped_taking_input_never_takes_it_again(claimed, statement):
    before = snapshot()
    with pytest.raises(Exception, match="is refused"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL fund.allow_maintenance = 'off'")
            cursor.execute(statement, [claimed.id])
    assert snapshot() == before


def test_the_application_books_and_settles_with_every_trigger_on(usdt_fund, linear):
    """The legitimate paths pass the triggers: intake, settlement (a late takeover included),
    deposits, withdrawals, corrections, the status moves of a failed and retried cycle."""
    from unittest import mock

    from fund.services.settlement import posting
    from tests.factories import UserFactory

    with connection.cursor() as cursor:
        cursor.execute("SET fund.allow_maintenance = 'off'")  # this session: as production
    try:
        first = deposit(usdt_fund, "1000")
        book_profit(linear, "2.5", at(0, 1))
        book_loss(linear, "500", at(0, 10))
        cycle = SettlementCycle.objects.get(starts_at=at(0))
        report_profits(cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
        cycles_close_due(now=cycle.settle_after)
        with mock.patch.object(posting, "_post_figures", side_effect=RuntimeError("boom")):
            with pytest.raises(RuntimeError):
                settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
        assert SettlementCycle.objects.get(pk=cycle.pk).status == "failed"
        book_loss(linear, "3", at(0, 11))  # late: booked into the next cycle
        settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
        assert SettlementCycle.objects.get(pk=cycle.pk).status == "settled"
        fund_withdraw(asset_code="USDT", amount="1", reason="fees")
        from fund.services.audit import Audit

        fund_record_correct(
            record_id=first.id,
            amount="-0.5",
            reason="typo",
            audit=Audit(actor=UserFactory(is_staff=True), ip_address="127.0.0.1", user_agent=""),
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET fund.allow_maintenance = 'on'")  # the test database's flush
    fund = Fund.objects.get(pk=usdt_fund.pk)
    assert LiquidationTakeover.objects.filter(late=True).count() == 1
    assert_books_hold(fund)
    assert ledger_verify(fund=fund).ok and cycles_verify(fund=fund).ok
    assert takeovers_verify(fund=fund).ok
