"""A GET changes nothing: the console's cycle page (which refreshes every 2 s while a cycle
settles) computes and audits a preview only when staff ask for one, by POST; so does the API."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from fund.models import AdminAction, SettlementCycle
from tests.helpers import at, book_loss, deposit, report_profits

pytestmark = pytest.mark.django_db


@pytest.fixture
def cycle(usdt_fund, linear):
    deposit(usdt_fund, "1000")
    book_loss(linear, "500", at(0, 10))
    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(cycle, linear, {1: "600", 2: "300"})
    return cycle


def test_the_cycle_page_computes_and_audits_nothing_however_often_it_is_read(ops, cycle):
    console = Client()
    console.force_login(ops)
    for _ in range(5):
        page = console.get(f"/ops/cycles/{cycle.id}/").content.decode()
    assert "Preview the settlement" in page and "data-preview" not in page
    assert not AdminAction.objects.exists()


def test_a_preview_is_computed_and_audited_once_per_request(ops, cycle):
    console = Client()
    console.force_login(ops)
    page = console.post(f"/ops/cycles/{cycle.id}/preview/").content.decode()
    assert 'data-preview="loss">500.00000000' in page and "Settle now" in page
    assert list(AdminAction.objects.values_list("action", "cycle_id")) == [("preview", cycle.id)]
    assert console.get(f"/ops/cycles/{cycle.id}/preview/").status_code == 405


def test_a_settling_cycle_page_refreshes_without_a_preview_or_a_settle_button(ops, cycle):
    SettlementCycle.objects.filter(pk=cycle.pk).update(status="settling", settling_started_at=at(1))
    console = Client()
    console.force_login(ops)
    page = console.get(f"/ops/cycles/{cycle.id}/").content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "Preview the settlement" not in page and "Settle now" not in page
    assert not AdminAction.objects.exists()


def test_the_api_previews_by_post_only(ops, cycle):
    api = APIClient()
    api.force_authenticate(ops)
    url = f"/api/v1/admin/cycles/{cycle.id}/preview"
    assert api.get(url).status_code == 405 and not AdminAction.objects.exists()
    answer = api.post(url)
    assert answer.status_code == 200 and answer.data["loss"] == "500.00000000"
    assert AdminAction.objects.filter(action="preview").count() == 1


def test_a_settled_cycle_has_no_preview_in_the_console_nor_the_api(ops, world):
    api = APIClient()
    api.force_authenticate(ops)
    answer = api.post(f"/api/v1/admin/cycles/{world.cycle.id}/preview")
    assert answer.status_code == 409 and answer.data["code"] == "cycle_settled"
    console = Client()
    console.force_login(ops)
    assert console.post(f"/ops/cycles/{world.cycle.id}/preview/").status_code == 302
    assert not AdminAction.objects.filter(action="preview").exists()
