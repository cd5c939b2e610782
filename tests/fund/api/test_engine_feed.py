"""What flows back to the exchange (fund/api/engine.py): the outbox's events, numbered without gaps
and written with their change; a settled cycle's apportionments streamed in rank order; and the
exchange's acknowledgement that it applied them."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client

from fund.models import CycleApplication, Event, FundRecord, SettlementCycle
from fund.services.outbox import event_emit
from tests.factories import UserFactory
from tests.helpers import at, book_loss, deposit


def events(client, **query) -> dict:
    answer = client.get("/api/v1/engine/events", query)
    assert answer.status_code == 200, answer.content
    assert answer["Cache-Control"] == "private, no-store"
    return answer.json()


def lines(answer) -> list[dict]:
    return [json.loads(line) for line in b"".join(answer.streaming_content).splitlines()]


def test_every_change_writes_its_event_numbered_without_gaps(engine, world):
    feed = events(engine)
    seqs = [e["seq"] for e in feed["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and feed["last"] == seqs[-1]
    kinds = [e["kind"] for e in feed["events"]]
    assert kinds[0] == "fund.records_appended"  # the deposit
    assert "cycle.closed" in kinds and kinds[-1] == "cycle.settled"
    settled = feed["events"][-1]
    assert settled["cycle"] == world.cycle.id and settled["data"]["apportioned"] == "400.00000000"
    assert settled["data"]["apportionment_root"] == world.cycle.apportionment_root
    appended = [e["data"] for e in feed["events"] if e["kind"] == "fund.records_appended"]
    assert sum(d["count"] for d in appended) == FundRecord.objects.count()
    assert appended[-1]["head"] == world.cycle.fund.records.order_by("-seq").first().hash
    assert "acct" not in json.dumps(feed)  # no trader identity in the events


def test_a_change_that_rolls_back_leaves_no_event_and_no_gap(engine, usdt_fund):
    deposit(usdt_fund, "1")
    with pytest.raises(RuntimeError), transaction.atomic():
        deposit(usdt_fund, "2")
        raise RuntimeError("the change fails after its event was written")
    with pytest.raises(ValidationError):
        deposit(usdt_fund, "-1")  # refused: no record, no event
    deposit(usdt_fund, "3")
    feed = events(engine)
    assert [e["seq"] for e in feed["events"]] == [1, 2]
    assert [e["data"]["balance"] for e in feed["events"]] == ["1.00000000", "4.00000000"]


def test_the_feed_pages_by_cursor_and_waits_for_the_next(engine, usdt_fund):
    for i in range(5):
        deposit(usdt_fund, "1", reason=f"r{i}")
    first = events(engine, limit=2)
    assert [e["seq"] for e in first["events"]] == [1, 2] and first["more"] is True
    rest = events(engine, after=first["last"], limit=10)
    assert [e["seq"] for e in rest["events"]] == [3, 4, 5] and rest["more"] is False
    empty = events(engine, after=5, wait=1)  # nothing comes: an empty answer after the wait
    assert empty == {"events": [], "last": 5, "more": False}


@pytest.mark.parametrize(
    "query, field",
    [({"after": "-1"}, "after"), ({"after": "x"}, "after"), ({"after": "\u0661"}, "after"),
     ({"after": "9" * 30}, "after"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
     ({"wait": "31"}, "wait"), ({"wait": "1.5"}, "wait"), ({"after": "1\x00"}, "after")],
)  # fmt: skip
def test_bad_feed_cursors_are_a_400_naming_the_field(engine, usdt_fund, query, field):
    answer = engine.get("/api/v1/engine/events", query)
    assert answer.status_code == 400 and field in answer.json(), answer.content


def test_only_the_engine_reads_the_feed(anonymous, trader, staff, settlement_staff, world):
    for client in (anonymous, trader, staff, settlement_staff):
        for path in (
            "/api/v1/engine/events",
            f"/api/v1/engine/cycles/{world.cycle.id}/apportionments",
        ):
            assert client.get(path).status_code in (401, 403), (client, path)
        answer = client.post(f"/api/v1/engine/cycles/{world.cycle.id}/applied", {}, format="json")
        assert answer.status_code in (401, 403)
    assert not CycleApplication.objects.exists()


def test_a_settled_cycles_apportionments_stream_in_rank_order(engine, world):
    path = f"/api/v1/engine/cycles/{world.cycle.id}/apportionments"
    answer = engine.get(path)
    assert answer["Content-Type"] == "application/jsonl; charset=utf-8"
    assert (answer["Apportionment-Count"], answer["Apportionment-Total"]) == ("2", "400.00000000")
    assert answer["Apportionment-Root"] == world.cycle.apportionment_root
    rows = lines(answer)
    assert [(r["rank"], r["account"], r["position_id"], r["amount"]) for r in rows] == [
        (1, "acct-1", 1, "266.66666667"), (2, "acct-2", 2, "133.33333333"),
    ]  # fmt: skip
    assert lines(engine.get(path, {"from_rank": 2})) == rows[1:]
    csv_text = b"".join(engine.get(path, {"format": "csv"}).streaming_content).decode()
    assert csv_text.splitlines()[0] == "rank,account,position_id,statement,amount"
    assert engine.get(path, {"from_rank": "x"}).status_code == 400
    assert engine.get("/api/v1/engine/cycles/999999/apportionments").status_code == 404


def test_an_unsettled_cycle_has_no_feed_and_cannot_be_applied(engine, usdt_fund, linear):
    book_loss(linear, "5", at(0, 1))
    cycle = SettlementCycle.objects.get()
    assert engine.get(f"/api/v1/engine/cycles/{cycle.id}/apportionments").status_code == 409
    answer = engine.post(
        f"/api/v1/engine/cycles/{cycle.id}/applied",
        {"count": 0, "total": "0.00000000", "root": ""},
        format="json",
    )
    assert answer.status_code == 409 and answer.json()["code"] == "cycle_not_settled"


def ack(engine, cycle, **overrides):
    body = {"count": 2, "total": "400.00000000", "root": cycle.apportionment_root, **overrides}
    return engine.post(f"/api/v1/engine/cycles/{cycle.id}/applied", body, format="json")


@pytest.mark.parametrize(
    "overrides",
    [{"count": 3}, {"total": "400.00000001"}, {"total": "399.99999999"}, {"root": "ab" * 32},
     {"root": ""}],
)  # fmt: skip
def test_an_acknowledgement_of_other_figures_is_a_409_naming_the_expected(engine, world,
                                                                          overrides):  # fmt: skip
    answer = ack(engine, world.cycle, **overrides)
    assert answer.status_code == 409, answer.content
    assert answer.json()["expected"] == {
        "count": 2, "total": "400.00000000", "root": world.cycle.apportionment_root,
    }  # fmt: skip
    assert not CycleApplication.objects.exists()
    assert not Event.objects.filter(kind="cycle.applied").exists()


@pytest.mark.parametrize(
    "overrides, field",
    [({"count": "2"}, "count"), ({"count": 2.0}, "count"), ({"count": True}, "count"),
     ({"count": -1}, "count"), ({"total": 400}, "total"), ({"total": "400.000000001"}, "total"),
     ({"total": "\u0664\u0660\u0660"}, "total"), ({"root": "AB" * 32}, "root"),
     ({"root": None}, "root"), ({"extra": 1}, "extra")],
)  # fmt: skip
def test_a_malformed_acknowledgement_is_a_400_and_writes_nothing(engine, world, overrides, field):
    answer = ack(engine, world.cycle, **overrides)
    assert answer.status_code == 400 and field in answer.json(), answer.content
    assert not CycleApplication.objects.exists()


def test_the_acknowledgement_is_kept_once_and_shown(engine, world, settlement_staff):
    first = ack(engine, world.cycle)
    assert first.status_code == 201, first.content
    again = ack(engine, world.cycle)
    assert again.status_code == 200 and again.json() == first.json()
    assert CycleApplication.objects.count() == 1
    (applied,) = Event.objects.filter(kind="cycle.applied")
    assert applied.data["count"] == 2 and applied.cycle_id == world.cycle.id
    assert ack(engine, world.cycle, count=1).status_code == 409  # still its own figures only
    assert engine.post("/api/v1/engine/cycles/999999/applied", {}, format="json").status_code == 404
    cycle = Client().get(f"/api/v1/cycles/{world.cycle.id}").json()
    assert cycle["applied_at"] == first.json()["applied_at"].replace("+00:00", "Z")
    page = Client().get(f"/cycles/{world.cycle.id}/").content.decode()
    assert (
        "Applied to traders&#x27; balances at" in page or "Applied to traders' balances at" in page
    )


def test_the_console_lists_settled_cycles_not_applied(engine, world, settings):
    staff = UserFactory(username="ops2", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="settle_cycles"))
    client = Client()
    client.force_login(staff)
    settings.APPLY_ALERT_SECONDS = 1
    html = client.get("/ops/").content.decode()
    assert "1 settled cycle with" in html and ">late<" in html
    ack(engine, world.cycle)
    html = client.get("/ops/").content.decode()
    assert "the exchange has applied every settled cycle" in html


@pytest.mark.django_db(transaction=True)  # outside any transaction, as a stray call would be
def test_events_are_written_only_inside_a_change(usdt_fund):
    with pytest.raises(AssertionError):
        event_emit("cycle.closed", fund=usdt_fund, data={})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_and_acknowledgements_on_postgres(world):
    """Twenty deposits into two funds at once: twenty events, numbered 1 … without a gap after
    the world's; fifty identical acknowledgements at once: one kept, every answer 200 or 201."""
    from rest_framework.test import APIClient

    from statements.models import ApiToken
    from statements.services import api_token_create
    from tests.factories import FundFactory
    from tests.helpers import run_together

    other = FundFactory(asset__code="USDC")
    before = Event.objects.count()
    run_together(*[
        (lambda f=f, i=i: deposit(f, "1", reason=f"at once {i}"))
        for i, f in enumerate([world.cycle.fund, other] * 10)
    ])  # fmt: skip
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, before + 21))
    _, token = api_token_create(user=UserFactory(), kind=ApiToken.Kind.ENGINE, name="wallet")

    def one_ack():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return ack(client, world.cycle).status_code

    assert set(run_together(*[one_ack] * 50)) <= {200, 201}
    assert CycleApplication.objects.count() == 1
    assert Event.objects.filter(kind="cycle.applied").count() == 1


@pytest.mark.postgres
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_postgresql_writes_the_feed_byte_for_byte_as_python_does(engine, world, fmt):
    """On PostgreSQL the feed is COPY … TO STDOUT (fund/api/engine.py): the same bytes as the
    rows Python writes, for awkward account ids, from a rank, and for an asset without decimals."""
    from django.test import RequestFactory
    from rest_framework.request import Request

    from fund.api.csv import rows_response
    from fund.api.engine import FEED_HEADER, apportionment_rows, apportionments_copied
    from statements.models import TraderAccount

    TraderAccount.objects.filter(external_id="acct-1").update(external_id="a\"b\\c,d/'e")
    cycle = SettlementCycle.objects.select_related("fund__asset").get(pk=world.cycle.id)
    for precision in (8, 0, 2):
        cycle.fund.asset.precision = precision
        for from_rank in (1, 2, 3):
            copied = b"".join(apportionments_copied(cycle, from_rank, as_csv=fmt == "csv"))
            request = Request(RequestFactory().get("/"))
            request.accepted_renderer = type("R", (), {"format": fmt})()
            python = b"".join(
                chunk if isinstance(chunk, bytes) else chunk.encode()
                for chunk in rows_response(
                    request, "x", FEED_HEADER, apportionment_rows(cycle, from_rank)
                ).streaming_content
            )
            assert copied == python, (precision, from_rank)
    answer = engine.get(f"/api/v1/engine/cycles/{cycle.id}/apportionments", {"format": fmt})
    assert b'a\\"b\\\\c' in b"".join(answer.streaming_content) or fmt == "csv"


@pytest.mark.postgres
def test_a_reader_that_stops_half_way_leaves_the_connection_usable(world):
    from django.db import connection

    from fund.api.engine import apportionments_copied

    cycle = SettlementCycle.objects.select_related("fund__asset").get(pk=world.cycle.id)
    rows = apportionments_copied(cycle, 1, as_csv=False)
    assert json.loads(next(rows))["rank"] == 1  # one row of two: the COPY is under way
    rows.close()  # the client went away (the server closes the response's iterator)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM fund_apportionment")
        assert cursor.fetchone() == (2,)
