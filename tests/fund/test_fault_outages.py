"""Broker and database outages, and duplicated schedulers, with real Celery processes on
PostgreSQL and Redis. After each fault the books must hold (tests.helpers.assert_books_hold)."""

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from config.celery import app
from fund.models import FundRecord, LiquidationTakeover, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.tasks import settle_cycle
from statements.models import ApiToken
from tests.factories import ContractFactory, FundFactory, UserFactory
from tests.helpers import assert_books_hold, book_loss, client_for, deposit, report_profits
from tests.workers import (
    APPLICATION_NAME,
    ROOT,
    beat,
    database_url_of_test_database,
    wait_for,
    worker,
    worker_phase,
)

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A Redis server of the test's own, so that stopping it troubles no one else."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
                ).stdout.strip()
                == b"PONG"
            ),
            timeout=10,
            message="redis-server did not start",
        )

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis():
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


def takeovers(prefix: str, n: int, *, loss: bool, start, end) -> dict:
    """n takeovers closing between start and end: each a loss of 2 or a profit of 1.5 USDT."""
    step = (end - start) / (n + 1)
    return {
        "items": [
            {
                "external_id": f"{prefix}-{i}",
                "contract": "BTCUSDT",
                "side": "long",
                "quantity": "1",
                "takeover_price": "100",
                "close_price": "98" if loss else "99.5",
                "remaining_margin": "0" if loss else "2",
                "taken_over_at": (start + step * (i + 1) - timedelta(seconds=1)).isoformat(),
                "closed_at": (start + step * (i + 1)).isoformat(),
            }
            for i in range(n)
        ]
    }


def test_a_redis_outage_loses_nothing_and_due_cycles_settle_once_redis_is_back(
    private_redis, tmp_path
):
    """Redis (broker and cache) goes down while the engine ingests and a cycle falls due: ingestion
    still answers, pages still render, a scheduler run that cannot reach the broker gives its claim
    back; once Redis is back the beat and worker that lived through the outage settle the cycle."""
    now = timezone.now()
    fund = FundFactory(
        anchor=now - timedelta(seconds=40), cycle_seconds=60, grace_seconds=0
    )  # ends in ~20 s
    ContractFactory(symbol="BTCUSDT", margin_asset=fund.asset)
    deposit(fund, "100")
    cycles_close_due(claim=False)
    cycle = SettlementCycle.objects.get(fund=fund, starts_at=fund.anchor)
    engine = client_for(UserFactory(username="trading-engine"), ApiToken.Kind.ENGINE)
    redis_env = {"REDIS_URL": private_redis.url, "CELERY_BEAT_SECONDS": "1"}
    cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": private_redis.url,
        }
    }
    queue = "celery"  # the beat sends to the default queue; the private Redis has no one else
    worker_process = worker(queue, tmp_path / "worker.log", env=redis_env)
    beat_process = beat(tmp_path / "beat.log", tmp_path / "beat-schedule", env=redis_env)
    try:
        with override_settings(CACHES=cache):
            before = engine.post(
                "/api/v1/ingest/liquidations",
                takeovers("before", 20, loss=False, start=cycle.starts_at, end=timezone.now()),
                format="json",
            )
            assert before.status_code == 201, before.data

            private_redis.stop()
            during = engine.post(
                "/api/v1/ingest/liquidations",
                takeovers("during", 30, loss=True, start=cycle.starts_at, end=timezone.now()),
                format="json",
            )
            assert during.status_code == 201, during.data
            profits = engine.post(
                "/api/v1/ingest/position-profits",
                {
                    "cycle": cycle.id,
                    "items": [
                        {
                            "position_id": p,
                            "account": f"acct-{p}",
                            "contract": "BTCUSDT",
                            "profit": f"{p}.5",
                        }
                        for p in range(1, 41)
                    ],
                },
                format="json",
            )
            assert profits.status_code == 201, profits.data
            assert (
                Client().get("/").status_code == 200
                and Client().get("/funds/USDT/").status_code == 200
            )
            assert Client().get("/api/v1/funds/USDT").status_code == 200

            # The cycle ends while Redis is down; a scheduler run claims it but cannot send it.
            wait_for(lambda: timezone.now() > cycle.ends_at + timedelta(seconds=1), timeout=60)
            tick = subprocess.run(
                [sys.executable, "manage.py", "close_due_cycles"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                env={
                    **os.environ,
                    "DATABASE_URL": database_url_of_test_database("fund-test-tick"),
                    "DJANGO_SETTINGS_MODULE": "config.settings.base",
                    "CELERY_TASK_ALWAYS_EAGER": "false",
                    **redis_env,
                },
            )
            assert tick.returncode == 1 and "could not be reached" in tick.stderr, (
                tick.stdout + tick.stderr
            )
            cycle.refresh_from_db()
            assert (
                cycle.status == SettlementCycle.Status.CLOSED and cycle.settle_requested_at is None
            )

            private_redis.start()
            try:
                wait_for(
                    lambda: SettlementCycle.objects.get(pk=cycle.pk).status == "settled",
                    timeout=120,
                    interval=0.5,
                    message="the cycle did not settle after Redis came back",
                )
            except AssertionError:
                pytest.fail(
                    "not settled\nworker:\n"
                    + worker_process.output()
                    + "\nbeat:\n"
                    + beat_process.output()
                )
    finally:
        beat_process.stop()
        worker_process.stop()

    cycle.refresh_from_db()
    assert set(LiquidationTakeover.objects.values_list("external_id", flat=True)) == (
        {f"before-{i}" for i in range(20)} | {f"during-{i}" for i in range(30)}
    )
    assert FundRecord.objects.filter(fund=fund, kind="liquidation_profit").count() == 20
    assert cycle.loss_units == 30 * 2 * 10**8 and cycle.participant_count > 0
    assert worker_process.output().count("fund.tasks.settle_cycle[") >= 1
    assert_books_hold(fund)


def test_a_lost_database_connection_mid_settlement_rolls_back_and_the_task_retries(
    large_cycle, usdt_fund, tmp_path
):
    """PostgreSQL ends the worker's session while it writes the statements: the transaction rolls
    back, the task retries on a new connection and the cycle settles once."""
    queue = f"db-{uuid.uuid4().hex[:8]}"
    process = worker(queue, tmp_path / "worker.log")
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        result = settle_cycle.apply_async(args=[large_cycle.id], queue=queue)
        wait_for(
            lambda: worker_phase(large_cycle.id) >= 2,
            timeout=120,
            interval=0.001,
            message="the worker never wrote statements",
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                [APPLICATION_NAME],
            )
            assert all(row[0] for row in cursor.fetchall())
        try:
            outcome = result.get(timeout=180)
        except Exception as exc:
            pytest.fail(f"the task did not settle the cycle ({exc!r})\n{process.output()}")
    finally:
        app.conf.task_always_eager = previous
        process.stop()
    large_cycle.refresh_from_db()
    assert (
        outcome["posted"] is True and large_cycle.status == "settled" and large_cycle.attempts == 2
    )
    assert "OperationalError" in process.output(whole=True)  # what the worker met, and retried on
    assert_books_hold(usdt_fund)


def test_two_beat_processes_send_each_due_settlement_once(tmp_path):
    """Two beats (a mistake operators make) tick every second against one worker for a while:
    every past cycle is opened once, closed and settled once."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    fund = FundFactory(anchor=midnight - timedelta(days=3), grace_seconds=60)
    contract = ContractFactory(symbol="BTCUSDT", margin_asset=fund.asset)
    deposit(fund, "1000")
    for day in range(3):
        book_loss(contract, "50", fund.anchor + timedelta(days=day, hours=10))
        cycle = SettlementCycle.objects.get(fund=fund, starts_at=fund.anchor + timedelta(days=day))
        report_profits(
            cycle, contract, {p: str(10 * p) for p in range(1, 30)}, account_prefix=f"d{day}"
        )
    queue = f"beats-{uuid.uuid4().hex[:8]}"
    env = {"CELERY_BEAT_SECONDS": "1", "CELERY_QUEUE": queue}
    worker_process = worker(queue, tmp_path / "worker.log", env=env)
    beats = [
        beat(tmp_path / f"beat{i}.log", tmp_path / f"beat{i}-schedule", env=env) for i in range(2)
    ]
    try:
        wait_for(
            lambda: SettlementCycle.objects.filter(fund=fund, status="settled").count() == 3,
            timeout=180,
            interval=0.5,
            message="the three past cycles did not settle",
        )
        time.sleep(3)  # both beats keep ticking over the settled cycles
    finally:
        for process in beats:
            process.stop()
        worker_process.stop()
    output = worker_process.output(whole=True)
    received = len(re.findall(r"Task fund\.tasks\.settle_cycle\[[^\]]+\] received", output))
    assert received == 3, f"{received} settle tasks received for 3 due cycles\n{output}"
    for process in beats:  # both schedulers were ticking all along
        assert process.output(whole=True).count("Sending due task") >= 3, process.output()
    assert (
        SettlementCycle.objects.filter(fund=fund).count() == 4
    )  # the three past days and today, each once
    assert_books_hold(fund)
