"""The list filters behave alike on the pages and in the API (fund/filters.py): what one
refuses, the other names too; hostile values are field errors, never a 500."""

import pytest

from tests.helpers import deposit

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    ["kind=%", "kind=%s", "kind=%(x)s", "kind=deposit,nope", "from=soon", "to=2026-13-01",
     "from=0001-01-01T00:00:00%2B23:59", "to=9999-12-31"],
)  # fmt: skip
def test_a_bad_record_filter_is_a_field_error_on_the_page_and_the_api(client, usdt_fund, query):
    deposit(usdt_fund, "1")
    field = query.split("=")[0]
    api = client.get(f"/api/v1/funds/USDT/records?{query}")
    assert api.status_code == 400 and field in api.json()
    page = client.get(f"/funds/USDT/?{query}")
    assert page.status_code == 200 and 'class="error" role="alert"' in page.content.decode()


@pytest.mark.parametrize("query", ["status=%", "status=%d", "status=open,nope"])
def test_a_bad_cycle_filter_is_a_field_error_on_the_page_and_the_api(client, world, query):
    assert client.get(f"/api/v1/cycles?{query}").status_code == 400
    page = client.get(f"/cycles/?{query}")
    assert page.status_code == 200 and 'class="error" role="alert"' in page.content.decode()


def test_a_good_filter_selects_the_same_records_on_the_page_and_the_api(client, usdt_fund):
    deposit(usdt_fund, "1")
    from fund.services.ledger import fund_withdraw

    fund_withdraw(asset_code="USDT", amount="0.5", reason="Moved")
    api = client.get("/api/v1/funds/USDT/records?kind=withdrawal,deposit&from=2000-01-01").json()
    assert [r["seq"] for r in api["results"]] == [2, 1]
    page = client.get("/funds/USDT/?kind=withdrawal&from=2000-01-01").content.decode()
    assert "USDT #2<" in page and "USDT #1<" not in page


@pytest.mark.parametrize("asset", ["US%00DT", "%E2%82%AC", "USDT%20", "a" * 17])
def test_a_fund_code_no_asset_can_have_is_a_404_everywhere(client, usdt_fund, asset):
    for url in (f"/funds/{asset}/", f"/api/v1/funds/{asset}", f"/api/v1/funds/{asset}/records"):
        # 404; a NUL is refused before any view (400, tests/test_hostile_input.py)
        assert client.get(url).status_code == (400 if "%00" in asset else 404), url
