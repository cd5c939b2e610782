"""One step of the settlement benchmark, in its own process (bench/run.py drives it).

    python bench/settle.py prepare N   # a fresh schema, one fund, one cycle with N profitable
                                       # positions
    python bench/settle.py settle [--fan-out]
                                       # settles that cycle; prints seconds and peak memory as
                                       # JSON, then the fan-out's seconds (after the commit, as a
                                       # worker runs it); --fan-out first gives every account a
                                       # login with an email address and adds a webhook endpoint
                                       # (a receiver in this process), so the fan-out has work
    python bench/settle.py feed        # the engine's feed of the settled cycle against
                                       # COPY (SELECT …) TO STDOUT of the same rows
    python bench/settle.py copy N      # COPYs N statement rows (rolled back); prints seconds
                                       # as JSON

DATABASE_URL chooses the database, as for the portal itself.
"""

import json
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE", "true")  # the fan-out's receiver is on 127.0.0.1

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from fund.models import Contract, Fund, PositionProfit, SettlementCycle  # noqa: E402
from fund.services.bulk import insert_rows  # noqa: E402
from fund.services.cycles import cycles_close_due  # noqa: E402
from fund.services.ledger import fund_deposit  # noqa: E402
from fund.services.liquidations import TakeoverInput, liquidations_record  # noqa: E402
from fund.services.settlement import settlement_cycle_settle  # noqa: E402
from statements.models import Asset, Statement, TraderAccount  # noqa: E402

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS = 20_000


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(n: int) -> dict:
    call_command("migrate", verbosity=0)
    rng = random.Random(n)
    asset = Asset.objects.create(code="USDT", name="Tether USD", precision=8)
    # Every position participates (screening ratio 1): the most rows a settlement can write.
    Fund.objects.create(asset=asset, anchor=ANCHOR, screening_ratio=Decimal(1))
    contract = Contract.objects.create(symbol="BTCUSDT", margin_asset=asset, kind="linear")
    TraderAccount.objects.bulk_create(
        [TraderAccount(external_id=f"B-{i:06d}") for i in range(ACCOUNTS)], batch_size=5000
    )
    account_ids = list(TraderAccount.objects.values_list("id", flat=True))
    fund_deposit(
        asset_code="USDT", amount="50000000", reason="benchmark", now=ANCHOR + timedelta(minutes=1)
    )
    loss = liquidations_record(
        items=[
            TakeoverInput(
                external_id="bench-loss",
                contract="BTCUSDT",
                side="long",
                quantity="1",
                takeover_price="3000000",
                close_price="1000000",
                remaining_margin="0",
                taken_over_at=ANCHOR + timedelta(hours=1),
                closed_at=ANCHOR + timedelta(hours=1, seconds=5),
            )
        ],
        now=ANCHOR + timedelta(hours=2),
    ).rows[0]
    cycle = loss.cycle
    # Profits from one cent to a few hundred thousand USDT: a long tail and a few large ones.
    received = ANCHOR + timedelta(hours=3)
    with transaction.atomic():
        insert_rows(
            PositionProfit,
            # Each with its salt (16 random bytes), as the intake gives every position profit.
            [
                "cycle_id",
                "position_id",
                "account_id",
                "contract_id",
                "profit_units",
                "salt",
                "received_at",
            ],
            (
                (
                    cycle.id,
                    10_000_000 + i,
                    account_ids[i % ACCOUNTS],
                    contract.id,
                    int(rng.paretovariate(1.2) * 10**9) + rng.randrange(10**6),
                    os.urandom(16),
                    received,
                )
                for i in range(n)
            ),
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    cycles_close_due(now=cycle.settle_after)
    return {"cycle": cycle.id, "positions": PositionProfit.objects.filter(cycle=cycle).count()}


def _fan_out_targets() -> object:
    """Every account a login with an address (the emails), and a webhook endpoint for every
    event kind, posting to a receiver in this process; returns the receiver."""
    from django.contrib.auth import get_user_model

    from fund.models import Event
    from fund.services.audit import Audit
    from fund.services.webhooks import webhook_endpoint_create
    from tests.receiver import Receiver

    User = get_user_model()
    accounts = list(TraderAccount.objects.order_by("id"))
    users = User.objects.bulk_create(
        [User(username=a.external_id, email=f"{a.external_id}@example.com") for a in accounts],
        batch_size=5000,
    )
    for account, user in zip(accounts, users):
        account.user = user
    TraderAccount.objects.bulk_update(accounts, ["user"], batch_size=5000)
    receiver = Receiver().start()
    staff = User.objects.create(username="bench-ops", is_staff=True)
    webhook_endpoint_create(url=receiver.url, event_types=list(Event.Kind.values),
                            audit=Audit(actor=staff))  # fmt: skip
    return receiver


def settle(fan_out: bool = False) -> dict:
    """The settlement until its commit, as traders and the engine see it; the fan-out (webhooks,
    emails) a commit sends to the workers is timed on its own, after it."""
    from django.conf import settings

    from fund.services import outbox
    from fund.tasks import fan_out_events

    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.dummy.EmailBackend"}}
    receiver = _fan_out_targets() if fan_out else None
    cycle = SettlementCycle.objects.get(status=SettlementCycle.Status.CLOSED)
    kicks = []
    outbox._kick = lambda: kicks.append(time.perf_counter())  # the broker send, in production
    before = peak_mib()
    started = time.perf_counter()
    outcome = settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    seconds = time.perf_counter() - started
    cycle.refresh_from_db()
    assert outcome.posted and cycle.status == SettlementCycle.Status.SETTLED and kicks
    fan_out_started = time.perf_counter()
    fan_out_events()
    fan_out_seconds = time.perf_counter() - fan_out_started
    from fund.models import CycleEmail

    emails = CycleEmail.objects.filter(cycle=cycle, status=CycleEmail.Status.SENT).count()
    if receiver is not None:
        receiver.stop()
    return {
        "seconds": seconds,
        "profitable": cycle.profitable_count,
        "participants": cycle.participant_count,
        "rss_before_mib": before,
        "peak_rss_mib": peak_mib(),
        "fan_out_seconds": fan_out_seconds,
        "emails": emails,
        "webhooks": len(receiver.received) if receiver else 0,
    }


def feed() -> dict:
    """The settled cycle's apportionments through the engine's feed (the view, in this process,
    read to the end) against PostgreSQL's COPY (SELECT …) TO STDOUT of the same rows; the best of
    three each, JSON Lines and CSV."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from statements.models import ApiToken
    from statements.services import api_token_create

    cycle = SettlementCycle.objects.get(status=SettlementCycle.Status.SETTLED)
    user, _ = get_user_model().objects.get_or_create(username="bench-engine")
    _, token = api_token_create(user=user, kind=ApiToken.Kind.ENGINE, name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    floor_sql = (
        "COPY (SELECT a.rank, t.external_id, p.position_id, a.statement_id, a.amount_units "
        "FROM fund_apportionment a JOIN fund_positionprofit p ON p.id = a.position_id "
        "JOIN statements_traderaccount t ON t.id = p.account_id WHERE a.cycle_id = %s "
        "ORDER BY a.rank) TO STDOUT"
    )
    result = {"rows": cycle.participant_count, "rss_before_mib": peak_mib()}
    for fmt in ("jsonl", "csv"):
        floors, feeds = [], []
        for _ in range(3):
            started = time.perf_counter()
            with connection.cursor() as cursor, cursor.cursor.copy(floor_sql, [cycle.id]) as copy:
                for _block in copy:
                    pass
            floors.append(time.perf_counter() - started)
            started = time.perf_counter()
            answer = client.get(f"/api/v1/engine/cycles/{cycle.id}/apportionments",
                                {"format": fmt})  # fmt: skip
            assert answer.status_code == 200
            size = sum(len(chunk) for chunk in answer.streaming_content)
            feeds.append(time.perf_counter() - started)
        result[fmt] = {"copy_seconds": min(floors), "feed_seconds": min(feeds), "bytes": size}
    result["peak_rss_mib"] = peak_mib()  # flat: the rows are never held
    return result


def copy(n: int) -> dict:
    """The floor: COPY n rows shaped like the settlement's statements into the same (empty)
    table and commit (the foreign keys are checked at commit); then empty the table again."""
    assert connection.vendor == "postgresql"
    account_ids = list(TraderAccount.objects.values_list("id", flat=True))
    asset_id = Asset.objects.values_list("id", flat=True).get(code="USDT")
    created = ANCHOR + timedelta(days=1, minutes=6)
    description = "Loss apportionment, USDT cycle 2026-01-01 00:00 UTC"
    assert not Statement.objects.exists()
    started = time.perf_counter()
    with transaction.atomic():
        insert_rows(
            Statement,
            ["id", "account_id", "asset_id", "type", "amount_units", "description", "created_at"],
            (
                (
                    1 + i,
                    account_ids[i % len(account_ids)],
                    asset_id,
                    "apportionment",
                    -(i % 10**9),
                    description,
                    created,
                )
                for i in range(n)
            ),
        )
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SET fund.allow_maintenance = 'on'")  # the books refuse TRUNCATE otherwise
        cursor.execute("TRUNCATE statements_statement, fund_apportionment")  # both empty before
        cursor.execute("VACUUM ANALYZE statements_statement")
    return {"seconds": seconds}


if __name__ == "__main__":
    step = sys.argv[1]
    if step == "prepare":
        print(json.dumps(prepare(int(sys.argv[2]))))
    elif step == "settle":
        print(json.dumps(settle(fan_out="--fan-out" in sys.argv[2:])))
    elif step == "feed":
        print(json.dumps(feed()))
    elif step == "copy":
        print(json.dumps(copy(int(sys.argv[2]))))
    else:
        sys.exit(f"unknown step {step!r}")
