"""The engine's index prices: exactly once per (asset, moment), all or nothing, every bad item
named at once, a changed price refused; the overview values each fund in USD with the latest."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from fund.models import IndexPrice
from tests.helpers import client_for, deposit

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/index-prices"


def post(client, items):
    return client.post(URL, {"items": items}, format="json")


@pytest.fixture(autouse=True)
def books(usdt_fund):
    """The USDT asset (and its fund), that the prices name."""


def moment(hours_ago: int) -> str:
    at = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)
    return at.isoformat()


def test_prices_are_booked_exactly_once_per_asset_and_moment(engine):
    items = [{"asset": "USDT", "price": "1.0002", "at": moment(2)},
             {"asset": "USDT", "price": "0.9999", "at": moment(1)}]  # fmt: skip
    first = post(engine, items)
    assert first.status_code == 201 and first.json()["created"] == 2
    again = post(engine, [{**items[0], "price": "1.000200"}, items[1]])  # the same, written longer
    assert again.status_code == 200 and again.json()["existing"] == 2
    assert [i["status"] for i in again.json()["items"]] == ["existing", "existing"]
    assert IndexPrice.objects.count() == 2
    assert IndexPrice.objects.order_by("at").last().price == Decimal("0.9999")


def test_a_changed_price_for_a_booked_moment_refuses_the_whole_batch(engine):
    post(engine, [{"asset": "USDT", "price": "1.0002", "at": moment(2)}])
    answer = post(
        engine,
        [{"asset": "USDT", "price": "1.5", "at": moment(1)},
         {"asset": "USDT", "price": "1.0003", "at": moment(2)}],
    )  # fmt: skip
    assert answer.status_code == 409 and "booked before at 1.0002 USD" in str(answer.json())
    assert IndexPrice.objects.count() == 1  # the new moment was not booked either


@pytest.mark.parametrize(
    "item, field",
    [
        ({"asset": "XYZ", "price": "1", "at": moment(1)}, "items[0].asset"),
        ({"asset": "USDT", "price": "0", "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": "1e3", "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": "١", "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": True, "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": "1.0000000000001", "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": "1000000000000000", "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": "1", "at": "2026-01-01T00:00:00"}, "items[0].at"),
        ({"asset": "USDT", "price": "1", "at": "yesterday"}, "items[0].at"),
        ({"asset": "USDT", "price": "1", "at": moment(-2)}, "items[0].at"),
        ({"asset": "USDT", "price": "1"}, "items[0].at"),
        ({"asset": "US\x00DT", "price": "1", "at": moment(1)}, None),
        ({"asset": {"code": "USDT"}, "price": "1", "at": moment(1)}, "items[0].asset"),
        ({"asset": "USDT", "price": ["1"], "at": moment(1)}, "items[0].price"),
        ({"asset": "USDT", "price": "1", "at": 1764547200}, "items[0].at"),
    ],
)
def test_bad_prices_are_named_and_nothing_is_booked(engine, item, field):
    answer = post(engine, [item])
    assert answer.status_code == 400, answer.content
    if field:
        assert field in answer.json(), answer.json()
    assert IndexPrice.objects.count() == 0


def test_every_bad_item_is_named_at_once_and_the_same_moment_twice_is_refused(engine):
    at = moment(1)
    answer = post(
        engine,
        [{"asset": "USDT", "price": "-1", "at": at}, {"asset": "USDT", "price": "1", "at": at},
         {"asset": "USDT", "price": "1", "at": at}],
    )  # fmt: skip
    errors = answer.json()
    assert answer.status_code == 400 and "items[0].price" in errors and "items[2].at" in errors


def test_only_the_engine_reports_prices(usdt_fund):
    item = [{"asset": "USDT", "price": "1", "at": moment(1)}]
    assert post(client_for(), item).status_code in (401, 403)
    assert IndexPrice.objects.count() == 0


def test_the_overview_values_each_fund_in_usd_with_its_latest_price(engine, usdt_fund, client):
    deposit(usdt_fund, "1000")
    post(engine, [{"asset": "USDT", "price": "1.5", "at": moment(3)},
                  {"asset": "USDT", "price": "0.9995", "at": moment(1)}])  # fmt: skip
    page = client.get("/").content.decode()
    assert "999.50 USD" in page.replace("\u202f", "") and "Total, in US dollars" in page


def test_the_daily_history_lists_each_day_with_its_change_and_flows(usdt_fund, client):
    from fund.services.ledger import fund_deposit, fund_withdraw
    from tests.helpers import at

    fund_deposit(asset_code="USDT", amount="1000", reason="Opening", now=at(0, 5))
    fund_withdraw(asset_code="USDT", amount="250", reason="Treasury", now=at(2, 9))
    body = client.get("/funds/USDT/daily/?from=2026-01-01&to=2026-01-04").content.decode()
    body = body.replace("\u202f", "")
    rows = body.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    assert [r.split("<td>")[1][:10] for r in rows] == [
        "2026-01-04", "2026-01-03", "2026-01-02", "2026-01-01"
    ]  # fmt: skip
    assert "750.00000000 USDT" in rows[0] and ">0.00000000</td>" in rows[0]  # nothing on 4 January
    assert "750.00000000 USDT" in rows[1] and "−250.00000000" in rows[1]  # the withdrawal
    assert "1000.00000000 USDT" in rows[2] and "+1000.00000000" in rows[3]
    assert "bucket=day&amp;from=2026-01-01&amp;to=2026-01-04&amp;format=csv" in body
    bad = client.get("/funds/USDT/daily/?from=2026-02-01&to=2026-01-01").content.decode()
    assert "comes after the last" in bad and 'aria-invalid="true"' in bad
    assert client.get("/funds/USDT/daily/?from=2020-01-01&to=2026-01-01").status_code == 200
    assert client.get("/funds/USDT/daily/?from=%00").status_code == 400  # refused at the door


@pytest.mark.parametrize(
    "query",
    ["to=9999-12-31", "to=0001-01-01", "from=0001-01-01&to=0001-01-02", "from=9999-12-31",
     "from=2026-13-01", "to=2026-02-30", "from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-01-01"],
)  # fmt: skip
def test_the_daily_history_names_a_day_out_of_range_and_never_fails(usdt_fund, client, query):
    answer = client.get(f"/funds/USDT/daily/?{query}")
    assert answer.status_code == 200 and 'role="alert"' in answer.content.decode()
