"""The same ingestion batch sent from several connections at once, on PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fund.models import FundRecord, LiquidationTakeover
from statements.models import ApiToken
from tests.factories import UserFactory
from tests.helpers import assert_books_hold, client_for, run_together, takeover_item

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_books_a_batch_sent_three_times_at_once_exactly_once(usdt_fund, linear):
    usdt_fund.anchor = timezone.now() - timedelta(days=1)
    usdt_fund.save()
    batch = {
        "items": [
            takeover_item(
                f"race-{i}",
                quantity="1",
                takeover_price="100",
                close_price="99.5",
                remaining_margin="2",
            )
            for i in range(500)
        ]
    }
    engine = UserFactory(username="trading-engine")
    clients = [client_for(engine, ApiToken.Kind.ENGINE) for _ in range(3)]

    def send(client):
        response = client.post("/api/v1/ingest/liquidations", batch, format="json")
        return response.status_code, response.data["created"]

    statuses = run_together(*[lambda c=c: send(c) for c in clients])
    assert sorted(statuses) == [(200, 0), (200, 0), (201, 500)]
    assert LiquidationTakeover.objects.count() == 500
    assert FundRecord.objects.count() == 500  # each takeover made 1.5 USDT
    usdt_fund.refresh_from_db()
    assert usdt_fund.balance_units == 500 * 150_000_000
    assert_books_hold(usdt_fund)
