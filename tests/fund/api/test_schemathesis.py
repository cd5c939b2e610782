"""schemathesis against the live OpenAPI schema, in-process: generated requests (valid and
invalid) to every operation, each answered without a 5xx and as the schema documents."""

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from config.wsgi import application
from fund.services.liquidations import MAX_BATCH
from statements.models import ApiToken
from statements.services import api_token_create
from tests.factories import UserFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def tokens(world):
    """A token per audience: the engine, a trader, settlement staff."""
    staff = UserFactory(username="ops", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    engine = UserFactory(username="trading-engine")
    return {
        "ingestion": api_token_create(user=engine, kind=ApiToken.Kind.ENGINE, name="engine")[1],
        "engine": api_token_create(user=engine, kind=ApiToken.Kind.ENGINE, name="feed")[1],
        "traders": api_token_create(user=world.trader, kind=ApiToken.Kind.PERSONAL, name="alice")[
            1
        ],
        "admin": api_token_create(user=staff, kind=ApiToken.Kind.PERSONAL, name="ops")[1],
        "public": api_token_create(user=staff, kind=ApiToken.Kind.PERSONAL, name="reader")[1],
    }


@pytest.fixture
def keep_connection():
    """The test's database connection must stay open across the in-process requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
# Derandomized: the same examples on every run (wider random runs are for development).
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_it_answers_generated_requests_as_the_schema_says(case, tokens, keep_connection, settings):
    settings.ENGINE_EVENTS_MAX_WAIT = 0  # the feed's long poll answers at once here
    tag = (case.operation.definition.raw.get("tags") or ["public"])[0]
    # Schema-valid is not business-valid (an unknown contract, a time before the fund's first
    # cycle): such requests get a documented 400, so "positive data acceptance" is not asked.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {tokens.get(tag, tokens['public'])}"},
        excluded_checks=[positive_data_acceptance],
    )


@pytest.mark.django_db
def test_the_schema_says_what_the_server_enforces(client):
    """Bounds the server holds to are in the schema, so that a schema-valid request is not
    refused for them (schemathesis' "schema-valid request rejected")."""
    document = client.get("/api/schema/?format=json").json()
    components = document["components"]["schemas"]
    for batch in ("TakeoverBatchInRequest", "PositionProfitBatchInRequest"):
        items = components[batch]["properties"]["items"]
        assert (items["minItems"], items["maxItems"]) == (1, MAX_BATCH), batch
    name = components["TokenInRequest"]["properties"]["name"]
    assert (name["maxLength"], name["pattern"]) == (100, r"\S")
    page_sizes = {
        path: (parameter["schema"]["minimum"], parameter["schema"]["maximum"])
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "page_size"
    }
    assert page_sizes == {
        "/api/v1/admin/actions": (1, 1000),
        "/api/v1/admin/webhooks/{id}/deliveries": (1, 1000),
        "/api/v1/cycles": (1, 500),
        "/api/v1/funds/{asset}/records": (1, 1000),
        "/api/v1/me/statements": (1, 500),
        "/api/v1/me/positions": (1, 500),
    }


@pytest.mark.django_db
def test_the_schema_says_filters_are_not_empty_and_ids_are_canonical(client):
    """A filter sent empty is refused, and the engine's ids have one form: the schema says so."""
    document = client.get("/api/schema/?format=json").json()
    filters = {
        (path, parameter["name"]): parameter["schema"]
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }
    assert filters["/api/v1/cycles", "asset"]["minLength"] == 1
    assert filters["/api/v1/funds/{asset}/records", "from"]["minLength"] == 1
    assert "minLength" not in filters["/api/v1/cycles", "cursor"]
    takeover = document["components"]["schemas"]["TakeoverInRequest"]["properties"]
    assert takeover["external_id"]["pattern"] == "^[!-~]{1,64}$"
    assert takeover["contract"]["pattern"] == "^[!-~]{1,32}$"
