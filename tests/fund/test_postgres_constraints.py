"""Database constraints that hold even when code goes around the services (PostgreSQL)."""

import pytest
from django.db import IntegrityError, connection, transaction

from fund.models import Apportionment, Fund, FundRecord, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import Statement
from tests.helpers import at, book_loss, deposit, report_profits

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_refuses_an_apportionment_whose_position_belongs_to_another_cycle(usdt_fund, linear):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", at(0, 10))
    book_loss(linear, "5", at(1, 10))
    first, second = SettlementCycle.objects.order_by("starts_at")
    report_profits(first, linear, {1: "600"})
    report_profits(second, linear, {2: "600"})
    cycles_close_due(now=first.settle_after)
    settlement_cycle_settle(cycle_id=first.id, now=first.settle_after)
    apportionment = first.apportionments.get()
    other_position = second.position_profits.get()

    with pytest.raises(IntegrityError, match="apportionment_position_of_cycle"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE fund_apportionment SET position_id = %s WHERE id = %s",
                [other_position.id, apportionment.id],
            )
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    apportionment.refresh_from_db()
    assert apportionment.position.cycle_id == first.id


def test_it_refuses_a_takeover_whose_cycle_belongs_to_another_fund(usdt_fund, linear):
    from tests.factories import AssetFactory, FundFactory

    takeover = book_loss(linear, "5", at(0, 10))
    other = FundFactory(asset=AssetFactory(code="BTC"))
    with transaction.atomic():
        from fund.services.cycles import cycle_covering

        other_cycle = cycle_covering(
            fund=Fund.objects.select_for_update().get(pk=other.pk), at=at(0, 10)
        )
    with pytest.raises(IntegrityError, match="takeover_cycle_of_fund"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE fund_liquidationtakeover SET cycle_id = %s WHERE id = %s",
                [other_cycle.id, takeover.id],
            )
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE fund_fundrecord SET amount_units = amount_units + 1",
        "DELETE FROM fund_fundrecord",
        "TRUNCATE fund_fundrecord CASCADE",
        "UPDATE statements_statement SET amount_units = 0",
        "DELETE FROM fund_apportionment",
        "TRUNCATE statements_statement CASCADE",
        "UPDATE fund_settlementcycle SET apportionment_root = repeat('0', 64)",
        "UPDATE fund_settlementcycle SET apportioned_units = 0",
        "DELETE FROM fund_settlementcycle WHERE status = 'settled'",
    ],
)
def test_it_refuses_to_change_or_remove_the_books(world, statement):
    cycle = SettlementCycle.objects.values().get(pk=world.cycle.pk)
    before = (FundRecord.objects.count(), Statement.objects.count(), Apportionment.objects.count())
    with pytest.raises(Exception, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL fund.allow_maintenance = 'off'")
            cursor.execute(statement)
    assert (
        FundRecord.objects.count(),
        Statement.objects.count(),
        Apportionment.objects.count(),
    ) == before
    assert SettlementCycle.objects.values().get(pk=world.cycle.pk) == cycle
