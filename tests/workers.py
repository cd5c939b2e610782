"""Real Celery processes for the PostgreSQL + Redis tests: workers and beats as production runs
them (`celery -A config worker|beat`), talking to the test database, each in its own process
group so that a test can kill it as the kernel would (SIGKILL, nothing cleaned up)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
APPLICATION_NAME = "fund-test-worker"


def database_url_of_test_database(application_name: str = APPLICATION_NAME) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    # The test database lifts the books' triggers for its own flush (tests/conftest.py); the
    # processes under test run with them on, as production does.
    return (
        f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        f"?application_name={application_name}&options=-c%20fund.allow_maintenance%3Doff"
    )


class CeleryProcess:
    """One `celery -A config …` process; its output goes to a log file the test prints on
    failure."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None):
        self.log_path = log
        self._log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                "DATABASE_URL": database_url_of_test_database(),
                "DJANGO_SETTINGS_MODULE": "config.settings.base",
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "DJANGO_LOG_LEVEL": "INFO",
                **(env or {}),
            },
        )

    def kill(self) -> None:
        """SIGKILL to the whole process group (the worker and its pool processes)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        self._log.close()

    def output(self, *, whole: bool = False) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text()
        return text if whole else text[-6000:]


def worker(
    queue: str, log: Path, *, pool: str = "solo", env: dict | None = None, beat: bool = False
) -> CeleryProcess:
    args = [
        "worker",
        f"--pool={pool}",
        "--concurrency=1",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "-Q",
        queue,
        "--loglevel=INFO",
    ]
    return CeleryProcess(args, log, env)


def beat(log: Path, schedule: Path, env: dict | None = None) -> CeleryProcess:
    return CeleryProcess(["beat", "--loglevel=INFO", "-s", str(schedule)], log, env)


def wait_for(condition, *, timeout: float, interval: float = 0.1, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s: {message}")


# How far a worker has got in settling a cycle, in order; worker_phase returns the index, -1
# before the claim and len(SETTLE_PHASES) once settled.
SETTLE_PHASES = ["claimed", "ranking", "statements", "apportionments"]


def worker_phase(cycle_id: int) -> int:
    """How far the worker has got in settling the cycle, from PostgreSQL's view of its session."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM fund_settlementcycle WHERE id = %s", [cycle_id])
        status = cursor.fetchone()[0]
        if status == "settled":
            return len(SETTLE_PHASES)
        if status != "settling":
            return -1
        cursor.execute(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = %s "
            "AND datname = current_database()",
            [APPLICATION_NAME],
        )
        phase = 0
        for state, query in cursor.fetchall():
            if query.startswith("SELECT position_id, profit_units") and state == "active":
                phase = max(phase, 1)
            elif query.startswith('COPY "statements_statement"'):
                phase = max(phase, 2)
            elif query.startswith('COPY "fund_apportionment"'):
                phase = max(phase, 3)
        return phase
