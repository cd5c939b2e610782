"""No input gives a 500: every API operation (read from the live OpenAPI schema) and every page
and console form, sent a NUL byte, a lone surrogate or a time-zone offset PostgreSQL cannot
store in each query parameter, path segment and body field, answers a 4xx naming the field.
It matters most on PostgreSQL (.ci/run's second pass), which refuses NUL in text."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from fund.models import FundRecord, SettlementCycle
from statements.models import ApiToken
from tests.factories import UserFactory
from tests.helpers import client_for, takeover_item

pytestmark = pytest.mark.django_db
# As a hostile client writes them into a URL or a form: NUL, a lone surrogate in the bytes
# UTF-8 forbids (CESU), an offset PostgreSQL cannot store for year 1.
HOSTILE = ["%00", "a%00b", "%ED%A0%80", "0001-01-01T00:00:00%2B23:59"]
JSON_HOSTILE = ["\\u0000", "a\\u0000b", "\\ud800", "0001-01-01T00:00:00+23:59"]


def operations(client) -> list[tuple[str, str, dict]]:
    schema = client.get("/api/schema/?format=json").json()
    return [
        (method, path, spec)
        for path, item in schema["paths"].items()
        for method, spec in item.items()
        if method in ("get", "post", "delete")
    ]


def fill(path: str, world, value: str | None = None) -> str:
    """The path with its parameters: real ids, or the hostile value in one of them."""
    statement = world.trader.trader_account.statements.first()
    real = {"asset": "USDT", "pk": str(world.cycle.id), "seq": "1", "prefix": "abcd"}
    if "/me/statements/" in path:
        real["pk"] = str(statement.id)
    for name, text in real.items():
        path = path.replace(
            "{" + name + "}", text if value is None else value.replace("\x00", "%00")
        )
    return path


@pytest.fixture
def actors(world):
    ops = UserFactory(username="ops", is_staff=True)
    from django.contrib.auth.models import Permission

    ops.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    engine = client_for(UserFactory(username="engine"), ApiToken.Kind.ENGINE)
    return {
        "ingestion": engine,
        "engine": engine,
        "traders": client_for(world.trader),
        "admin": client_for(ops),
        "public": APIClient(),
    }


def test_every_api_operation_refuses_unstorable_text_in_every_place(world, actors):
    books = FundRecord.objects.count(), SettlementCycle.objects.count()
    for method, path, spec in operations(actors["public"]):
        client = actors[(spec.get("tags") or ["public"])[0]]
        params = [p["name"] for p in spec.get("parameters", []) if p["in"] == "query"]
        body_fields = ["items", "amount", "reason", "name", "cycle"]
        for value in HOSTILE:
            for name in params:
                answer = getattr(client, method)(f"{fill(path, world)}?{name}={value}")
                assert answer.status_code < 500, (method, path, name, value)
            if "{" in path:
                answer = getattr(client, method)(fill(path, world, value))
                assert answer.status_code < 500, (method, path, value)
        if method == "post":
            for value in JSON_HOSTILE:
                for field in body_fields:
                    item = f'{{"external_id": "{value}", "contract": "{value}"}}'
                    body = f'{{"{field}": "{value}", "items": [{item}]}}'
                    answer = client.post(fill(path, world), body, content_type="application/json")
                    assert answer.status_code < 500, (path, field, value)
                    if "\\u" in value:  # unstorable text creates nothing
                        assert answer.status_code != 201, (path, field, value)
    assert (FundRecord.objects.count(), SettlementCycle.objects.count()) == books


@pytest.mark.parametrize("value", ["%00", "a%00b"])
def test_a_nul_in_a_query_parameter_is_a_400_naming_it(client, world, value):
    answer = client.get(f"/api/v1/cycles?asset={value}")
    assert answer.status_code == 400 and "asset" in answer.json()
    page = client.get(f"/funds/USDT/?kind={value}")
    assert page.status_code == 400 and "kind" in page.content.decode()


def test_a_nul_or_lone_surrogate_in_a_json_body_is_a_400_naming_the_field(world):
    engine = client_for(UserFactory(username="engine"), ApiToken.Kind.ENGINE)
    for text in ('"lq-\\u0000"', '"lq-\\ud800"'):
        body = '{"items": [{"external_id": ' + text + "}]}"
        answer = engine.post("/api/v1/ingest/liquidations", body, content_type="application/json")
        assert answer.status_code == 400 and "items[0].external_id" in answer.json()["detail"]


PAGES = ["/", "/funds/USDT/", "/cycles/", "/rules/", "/faq/", "/me/statements/",
         "/ops/", "/ops/audit/", "/accounts/login/", "/ops/webhooks/", "/ops/webhooks/1/",
         "/me/settings/", "/accounts/password/reset/", "/me/tokens/", "/funds/USDT/daily/",
         "/cycles/1/", "/ops/funds/USDT/schedule/"]  # fmt: skip
FORMS = [
    ("/ops/funds/USDT/move/", ["kind", "amount", "reason", "token"]),
    ("/ops/funds/USDT/correct/", ["seq", "amount", "reason", "token"]),
    (
        "/ops/funds/USDT/schedule/",
        ["anchor", "cycle_seconds_0", "cycle_seconds_1", "grace_seconds_0", "fund_ratio"],
    ),  # fmt: skip
    ("/accounts/login/", ["username", "password"]),
    ("/accounts/password/", ["old_password", "new_password1", "new_password2"]),
    ("/ops/webhooks/", ["url", "description", "event_types"]),
    ("/ops/webhooks/1/", ["url", "description", "event_types", "active"]),
    ("/me/settings/", ["email_apportionments"]),
    ("/me/tokens/", ["name"]),
    ("/accounts/password/reset/", ["email"]),
    ("/demo/wallet/webhook", ["type"]),
]


def test_every_page_and_form_refuses_unstorable_text(world):
    ops = UserFactory(username="ops2", is_staff=True, is_superuser=True)
    from fund.models import WebhookEndpoint

    WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/h",
        event_types=["cycle.settled"],
        secret="whsec_AAAA",
        created_by=ops,
    )
    browser = Client()
    browser.force_login(ops)
    books = FundRecord.objects.count()
    for value in HOSTILE:
        for page in PAGES:
            for name in ("kind", "from", "to", "asset", "status", "type", "page", "before"):
                assert browser.get(f"{page}?{name}={value}").status_code < 500, (page, name, value)
        for url, fields in FORMS:
            for name in fields:
                body = "&".join(f"{f}={value if f == name else '1'}" for f in fields)
                answer = browser.post(url, body, content_type="application/x-www-form-urlencoded")
                assert answer.status_code < 500, (url, name, value)
        for cycle_path in ("/ops/cycles/{}/", "/cycles/{}/", "/funds/{}/", "/ops/funds/{}/move/",
                           "/ops/webhooks/{}/"):  # fmt: skip
            assert browser.get(cycle_path.format(value)).status_code < 500, (cycle_path, value)
    assert FundRecord.objects.count() == books


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_moment_postgresql_cannot_store_is_a_400_naming_the_field(world, linear, moment):
    engine = client_for(UserFactory(username="engine"), ApiToken.Kind.ENGINE)
    item = takeover_item("lq-tz", taken_over_at=moment, closed_at=moment)
    answer = engine.post("/api/v1/ingest/liquidations", {"items": [item]}, format="json")
    assert answer.status_code == 400 and any("items[0]" in key for key in answer.json())
    for query in (f"from={moment}", f"to={moment}"):
        listing = APIClient().get(f"/api/v1/funds/USDT/records?{query.replace('+', '%2B')}")
        assert listing.status_code == 400 and query[:2] in str(listing.json())
