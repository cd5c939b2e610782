"""A worker killed (SIGKILL) while it posts a large settlement, on PostgreSQL with Redis.

The settle task is acknowledged late and rejected back to the queue when its pool process dies;
when the whole worker dies its message is restored after the broker's visibility timeout (3 s
here). Either way the task comes back, and the cycle ends settled exactly once: one apportionment
and one statement per participant, one coverage record, nothing lost, nothing doubled.

Each seed picks where to strike (after the claim, while ranking, while writing the statements,
while writing the apportionments), a few milliseconds of jitter, and
whether the pool process or the whole worker dies. A failure names its seed; rerun one with
FAULT_SEED=<seed>.
"""

import os
import random
import time
import uuid
from pathlib import Path

import pytest

from config.celery import app
from fund.models import Apportionment, SettlementCycle
from fund.tasks import settle_cycle
from tests.helpers import LARGE_CYCLE_POSITIONS, assert_books_hold
from tests.workers import SETTLE_PHASES, worker, worker_phase

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

SEEDS = (
    [int(os.environ["FAULT_SEED"])] if os.environ.get("FAULT_SEED") else [1, 2, 3, 5, 7, 9, 10, 11]
)  # each phase × both kinds of death
FAST_RESTORE = {
    "CELERY_VISIBILITY_TIMEOUT": "3",
    "CELERY_RESTORE_INTERVAL": "1",
    "CELERY_RESTORE_THROTTLE": "1",
}


def pool_processes(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_worker_killed_mid_settlement_leaves_the_cycle_settled_exactly_once(
    seed, large_cycle, usdt_fund, tmp_path
):
    rng = random.Random(seed)
    target = rng.randrange(len(SETTLE_PHASES))
    jitter = rng.uniform(0, 0.02)
    whole_worker = rng.random() < 0.5
    struck = "the whole worker" if whole_worker else "the pool process"
    where = f"seed {seed}: strike {struck} at '{SETTLE_PHASES[target]}' + {jitter * 1000:.1f} ms"

    queue = f"crash-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    first = worker(queue, log, pool="prefork", env=FAST_RESTORE)
    second = None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        result = settle_cycle.apply_async(args=[large_cycle.id, True], queue=queue)
        deadline = time.monotonic() + 120
        while (phase := worker_phase(large_cycle.id)) < target:
            assert time.monotonic() < deadline, (
                f"{where}: the worker never got there\n{first.output()}"
            )
            time.sleep(0.001)
        time.sleep(jitter)
        if whole_worker:
            first.kill()
        else:
            children = pool_processes(first.process.pid)
            assert children, f"{where}: no pool process\n{first.output()}"
            for child in children:
                os.kill(child, 9)
        struck_at = worker_phase(large_cycle.id)
        if whole_worker:  # a new worker finds the task once its visibility timeout has passed
            second = worker(queue, log, pool="prefork", env=FAST_RESTORE)
        try:
            outcome = result.get(timeout=180)
        except Exception as exc:
            pytest.fail(f"{where}: the task did not come back ({exc!r})\n{log.read_text()[-6000:]}")
    finally:
        app.conf.task_always_eager = previous
        first.stop()
        if second:
            second.stop()

    large_cycle.refresh_from_db()
    assert large_cycle.status == SettlementCycle.Status.SETTLED, where
    assert struck_at < len(SETTLE_PHASES), (
        f"{where}: the worker had already committed (phase seen {phase})"
    )
    assert large_cycle.attempts == 2, f"{where}: attempts {large_cycle.attempts}"
    assert outcome["posted"] is True, (where, outcome)
    assert large_cycle.participant_count > LARGE_CYCLE_POSITIONS // 2
    assert Apportionment.objects.filter(cycle=large_cycle).count() == large_cycle.participant_count
    try:
        assert_books_hold(usdt_fund)
    except AssertionError as exc:
        raise AssertionError(f"{where}: {exc}") from exc
