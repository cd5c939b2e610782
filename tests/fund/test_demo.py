"""The demo history: built through the services, every past cycle settled, loaded once."""

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from fund.models import Fund, LiquidationTakeover, SettlementCycle
from statements.models import Statement, TraderAccount
from tests.helpers import assert_books_hold

pytestmark = pytest.mark.django_db
END = "2026-11-20T15:30:00+00:00"
ROOT = Path(__file__).resolve().parents[2]


def load(*args) -> str:
    out = StringIO()
    call_command("load_demo", "--days", "3", "--end", END, *args, stdout=out, verbosity=0)
    return out.getvalue()


def test_it_builds_a_settled_history_with_the_current_cycle_open():
    load()
    assert sorted(Fund.objects.values_list("asset__code", flat=True)) == [
        "BTC",
        "ETH",
        "USDC",
        "USDT",
    ]
    assert TraderAccount.objects.filter(user__isnull=False).count() == 300
    today = datetime(2026, 11, 20, tzinfo=UTC)
    for fund in Fund.objects.all():
        cycles = fund.cycles.order_by("starts_at")
        assert [c.status for c in cycles] == ["settled"] * 3 + ["open"]
        assert cycles.last().starts_at == today
        assert fund.balance_units == fund.records.aggregate(s=Sum("amount_units"))["s"] > 0
        assert fund.takeovers.filter(closed_at__gte=today).exists()  # today's takeovers so far
        assert_books_hold(fund)
    assert not LiquidationTakeover.objects.filter(
        closed_at__gt=datetime.fromisoformat(END)
    ).exists()
    settled = SettlementCycle.objects.filter(status="settled")
    assert Statement.objects.count() == settled.aggregate(n=Sum("participant_count"))["n"] > 0


def test_it_loads_once():
    load()
    statements = Statement.objects.count()
    assert "not loaded again" in load("--if-empty")
    assert Statement.objects.count() == statements
    with pytest.raises(CommandError, match="holds funds already"):
        load()


def _history(tmp_path, name: str) -> list:
    """Loads a two-day demo into a fresh SQLite file in another process; returns its ledger."""
    path = tmp_path / f"{name}.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{path}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    for command in (
        ["migrate", "-v0"],
        ["load_demo", "--days", "2", "--end", END, "--seed", "7", "-v0"],
    ):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT f.seq, f.kind, f.amount_units, f.balance_after_units, f.created_at, "
            "t.external_id "
            "FROM fund_fundrecord f LEFT JOIN fund_liquidationtakeover t ON t.id = f.takeover_id "
            "ORDER BY f.fund_id, f.seq"
        ).fetchall()


def test_it_gives_the_same_history_for_the_same_seed(tmp_path):
    first, second = _history(tmp_path, "first"), _history(tmp_path, "second")
    assert len(first) > 100 and first == second


def test_it_refuses_an_end_in_the_future():
    with pytest.raises(CommandError, match="future"):
        call_command("load_demo", "--end", "2999-01-01T00:00:00Z", stdout=StringIO(), verbosity=0)
