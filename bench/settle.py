"""One step of the settlement benchmark, in its own process (bench/run.py drives it).

    python bench/settle.py prepare N   # a fresh schema, one fund, one cycle with N profitable
                                       # positions
    python bench/settle.py settle      # settles that cycle; prints seconds and peak memory as JSON
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


def settle() -> dict:
    cycle = SettlementCycle.objects.get(status=SettlementCycle.Status.CLOSED)
    before = peak_mib()
    started = time.perf_counter()
    outcome = settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    seconds = time.perf_counter() - started
    cycle.refresh_from_db()
    assert outcome.posted and cycle.status == SettlementCycle.Status.SETTLED
    return {
        "seconds": seconds,
        "profitable": cycle.profitable_count,
        "participants": cycle.participant_count,
        "rss_before_mib": before,
        "peak_rss_mib": peak_mib(),
    }


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
        print(json.dumps(settle()))
    elif step == "copy":
        print(json.dumps(copy(int(sys.argv[2]))))
    else:
        sys.exit(f"unknown step {step!r}")
