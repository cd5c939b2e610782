"""Idempotency-Key and what follows the commit: a "settle now" whose send to the workers fails
after its answer was stored answers 503 and forgets that answer, so that the same request can be
sent again."""

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from fund.models import IdempotentRequest, SettlementCycle
from fund.tasks import settle_cycle
from tests.factories import AssetFactory, ContractFactory, FundFactory
from tests.helpers import book_loss, deposit


@pytest.mark.django_db(transaction=True)
def test_it_forgets_a_settle_now_answer_whose_send_failed(settlement_staff, monkeypatch):
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(asset=AssetFactory(code="USDC"), anchor=today)
    contract = ContractFactory(symbol="BTCUSDC", margin_asset=fund.asset)
    deposit(fund, "100")
    cycle = book_loss(contract, "5", timezone.now()).cycle
    url = f"/api/v1/admin/cycles/{cycle.id}/settle"
    sent = []

    def broker_down(*args, **kwargs):
        raise BrokerDown("the broker is unreachable")

    monkeypatch.setattr(settle_cycle, "apply_async", broker_down)
    first = settlement_staff.post(url, HTTP_IDEMPOTENCY_KEY="settle-1")
    assert first.status_code == 503 and first.data["code"] == "workers_unreachable"
    assert first.headers["Retry-After"] == "30"
    assert not IdempotentRequest.objects.exists()
    assert SettlementCycle.objects.get(pk=cycle.pk).status == "closed"  # the close committed
    monkeypatch.setattr(settle_cycle, "apply_async", lambda *a, **k: sent.append(a))
    again = settlement_staff.post(url, HTTP_IDEMPOTENCY_KEY="settle-1")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert sent == [((cycle.id,), {"ignore_grace": True})]
    assert IdempotentRequest.objects.get().status_code == 202
