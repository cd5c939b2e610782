"""The append-only guard is the owner's alone (migration 0012, README "Production"): a runtime role
with the README's GRANTs runs the application, and cannot change the books even after
`SET fund.allow_maintenance = 'on'` (the test database itself has it on for every session:
tests/conftest.py), not even when it is careless enough to hold every privilege; the tables'
owner, with maintenance on, can."""

import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from psycopg import errors

from fund.models import Fund, FundRecord, LiquidationTakeover, PositionProfit, SettlementCycle
from statements.models import Statement
from tests.workers import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PASSWORD = "runtime-test-secret"


def readme_grants() -> str:
    """The README's block of runtime GRANTs, exactly as an operator runs it."""
    readme = (Path(ROOT) / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", readme, flags=re.S)
    (grants,) = [b for b in blocks if "ON ALL TABLES IN SCHEMA public TO fund_app" in b]
    return grants


def superuser_connection(**kwargs) -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        dbname=s["NAME"],
        user=s["USER"],
        password=s["PASSWORD"] or None,
        **kwargs,
    )


def url_of(role: str) -> str:
    s = connection.settings_dict
    return (
        f"postgres://{role}:{PASSWORD}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    )


@pytest.fixture
def runtime_role(db):
    """A login role of the test database with exactly the README's GRANTs; dropped afterwards."""
    role = f"fund_app_test_{uuid.uuid4().hex[:10]}"
    name = connection.settings_dict["NAME"]
    with superuser_connection(autocommit=True) as su:
        su.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    try:
        with superuser_connection(autocommit=True) as su:
            su.execute(f'GRANT CONNECT ON DATABASE "{name}" TO {role}')
            su.execute(re.sub(r"\bfund_app\b", role, readme_grants()))
        yield role
    finally:
        with superuser_connection(autocommit=True) as su:
            su.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [role],
            )
            su.execute(f"DROP OWNED BY {role}")
            su.execute(f"DROP ROLE {role}")


def as_role(role: str) -> psycopg.Connection:
    conn = psycopg.connect(url_of(role), autocommit=True)
    # The test database turns maintenance on for every session; the runtime role says so too.
    assert conn.execute("SHOW fund.allow_maintenance").fetchone() == ("on",)
    conn.execute("SET fund.allow_maintenance = 'on'")
    return conn


def books():
    return (
        list(Fund.objects.values_list("id", "balance_units", "head_hash")),
        list(FundRecord.objects.values_list("id", "amount_units", "balance_after_units", "reason")),
        list(LiquidationTakeover.objects.values_list("id", "engine_result_units", "cycle_id")),
        list(PositionProfit.objects.values_list("id", "profit_units")),
        list(SettlementCycle.objects.values().order_by("id")),
        list(Statement.objects.values_list("id", "amount_units")),
    )


def settled_cycle_takeover(world) -> int:
    return LiquidationTakeover.objects.get(cycle=world.cycle).id


# Refused by the GRANTs themselves: the runtime role holds no UPDATE or DELETE on the books.
NOT_GRANTED = [
    "UPDATE fund_fundrecord SET amount_units = amount_units + 1",
    "DELETE FROM fund_fundrecord",
    "UPDATE fund_liquidationtakeover SET engine_result_units = engine_result_units * 2",
    "DELETE FROM fund_liquidationtakeover",
    "UPDATE statements_statement SET amount_units = amount_units - 1",
    "UPDATE fund_positionprofit SET profit_units = profit_units + 1",
    "TRUNCATE fund_fundrecord CASCADE",
    "ALTER TABLE fund_fundrecord DISABLE TRIGGER USER",
    "SET session_replication_role = replica",
]
# Refused by the triggers, maintenance on or not: where the role holds the privilege (it must,
# to append records, keep the fund's balance and move a cycle's status), or was given too much.
BY_THE_TRIGGERS = [
    "UPDATE fund_fundrecord SET amount_units = amount_units + 1 WHERE seq = 1",
    "DELETE FROM fund_fundrecord WHERE seq = 2",
    "UPDATE fund_liquidationtakeover SET engine_result_units = engine_result_units * 2",
    "DELETE FROM fund_liquidationtakeover WHERE engine_result_units < 0",
    "UPDATE statements_statement SET amount_units = amount_units - 1",
    "DELETE FROM fund_apportionment",
    "TRUNCATE statements_statement CASCADE",
    "UPDATE fund_fund SET balance_units = balance_units + 1",
    "UPDATE fund_settlementcycle SET loss_units = loss_units + 1, "
    "uncovered_units = uncovered_units + 1 WHERE status = 'settled'",
    "INSERT INTO fund_positionprofit (cycle_id, position_id, account_id, contract_id, "
    "profit_units, received_at) SELECT cycle_id, 99, account_id, contract_id, profit_units, "
    "received_at FROM fund_positionprofit LIMIT 1",
    "INSERT INTO fund_fundrecord (fund_id, seq, kind, amount_units, balance_after_units, "
    "created_at, reason, hash) SELECT fund_id, seq + 1, 'deposit', 1, balance_after_units + 2, "
    "created_at, 'forged', '' FROM fund_fundrecord ORDER BY seq DESC LIMIT 1",
]


def test_the_runtime_role_is_refused_even_after_setting_the_maintenance_switch(world, runtime_role):
    before = books()
    with as_role(runtime_role) as app:
        assert app.execute("SELECT current_user").fetchone() == (runtime_role,)
        for statement in NOT_GRANTED:
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute(statement)
        for statement in BY_THE_TRIGGERS[7:]:  # the ones it holds the privilege for
            with pytest.raises(errors.InsufficientPrivilege, match="is refused"):
                app.execute(statement)
    with superuser_connection(autocommit=True) as su:  # a careless operator grants everything
        su.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {runtime_role}")
    with as_role(runtime_role) as app:
        for statement in BY_THE_TRIGGERS:
            with pytest.raises(errors.InsufficientPrivilege, match="is refused"):
                app.execute(statement)
    assert books() == before


def test_the_owner_with_maintenance_on_can_repair_and_without_it_cannot(world):
    """A non-superuser owner of the tables (and a member of the owner role), inside a transaction
    that is rolled back: the change goes through with maintenance on, not with it off."""
    takeover = settled_cycle_takeover(world)
    before = books()
    owner, member = f"fund_owner_test_{uuid.uuid4().hex[:8]}", f"fund_ops_{uuid.uuid4().hex[:8]}"
    with superuser_connection() as su:  # one transaction, rolled back: roles, owners, changes
        su.execute(f"CREATE ROLE {owner} NOLOGIN")
        su.execute(f"CREATE ROLE {member} NOLOGIN IN ROLE {owner}")
        for table in ("fund_liquidationtakeover", "fund_fundrecord", "fund_fund"):
            su.execute(f"ALTER TABLE {table} OWNER TO {owner}")
        for role in (owner, member):
            su.execute(f"SET LOCAL ROLE {role}")
            su.execute("SET LOCAL fund.allow_maintenance = 'off'")
            for statement in (
                "UPDATE fund_liquidationtakeover SET engine_result_units = 1 WHERE id = %s",
                "DELETE FROM fund_liquidationtakeover WHERE id = %s",
            ):
                with pytest.raises(errors.InsufficientPrivilege), su.transaction():
                    su.execute(statement, [takeover])
            su.execute("SET LOCAL fund.allow_maintenance = 'on'")
            cursor = su.execute(
                "UPDATE fund_liquidationtakeover SET engine_result_units = 1 WHERE id = %s",
                [takeover],
            )
            assert cursor.rowcount == 1
            assert su.execute("UPDATE fund_fundrecord SET reason = 'repaired'").rowcount == 2
            su.execute("RESET ROLE")
        su.rollback()
    assert books() == before


def test_the_application_runs_as_the_runtime_role_with_exactly_the_readme_grants(runtime_role):
    """A demo history through the real services (intake of takeovers and position profits,
    deposits, withdrawals, settlements with their statements and apportionments), then
    verify_ledger, all connected as the runtime role."""
    env = {
        **os.environ,
        "DATABASE_URL": url_of(runtime_role),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    env.pop("REDIS_URL", None)
    manage = [sys.executable, "manage.py"]
    end = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%dT09:30:00")
    demo = subprocess.run(
        [*manage, "load_demo", "--days", "2", "--end", end, "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    settled = SettlementCycle.objects.filter(status="settled")
    assert settled.filter(participant_count__gt=0).exists()
    assert FundRecord.objects.filter(kind="settlement_coverage").exists()
    verify = subprocess.run(
        [*manage, "verify_ledger", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "settled cycles, totals and Merkle roots match" in verify.stdout
