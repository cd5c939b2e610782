"""Celery tasks: thin wrappers that take ids and call the services."""

import logging

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fund.services.cycles import cycles_close_due, cycles_release_claim
from fund.services.idempotency import idempotency_keys_prune
from fund.services.locks import BooksBusy
from fund.services.settlement import settlement_cycle_settle, settlements_dead_claims
from fund.services.transparency import checkpoints_sign_all

logger = logging.getLogger(__name__)
BROKER_ERRORS = (
    KombuOperationalError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)


@shared_task(name="fund.tasks.close_due_cycles", ignore_result=True)
def close_due_cycles() -> dict:
    """Every minute (beat): open current cycles, close ended ones, settle those past grace."""
    due = cycles_close_due()
    sent, unsent = send_settlements(due.to_settle)  # each fund's transaction has committed already
    return {"opened": due.opened, "closed": due.closed, "to_settle": sent, "unsent": unsent}


@shared_task(name="fund.tasks.resend_dead_settlements", ignore_result=True)
def resend_dead_settlements() -> dict:
    """Every DEAD_CLAIM_SECONDS (beat, 20 s): sends again the settlement of each settling cycle
    whose worker died (its claim is free: fund/services/settlement/resend.py), so that it settles
    within a minute of the death instead of the broker's visibility timeout."""
    sent, unsent = send_settlements(settlements_dead_claims())
    return {"resent": sent, "unsent": unsent}


def broker_unreachable(exc: BaseException | None) -> bool:
    """Whether the error comes from the broker or the result store being unreachable (Celery
    wraps the connection error, e.g. in a RuntimeError of the result store's reconnection)."""
    while exc is not None:
        if isinstance(exc, BROKER_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def send_settlements(cycle_ids: list[int]) -> tuple[list[int], list[int]]:
    """Sends each claimed cycle's settlement to the workers. When the broker cannot be reached the
    unsent cycles' claims are given back, so that the first run after the broker is back sends
    them (rather than waiting out the resend delay). Returns (sent, unsent)."""
    eager = settle_cycle.app.conf.task_always_eager  # in-process, an error is the settlement's own
    for i, cycle_id in enumerate(cycle_ids):
        try:
            settle_cycle.delay(cycle_id)
        except Exception as exc:
            if eager or not broker_unreachable(exc):
                raise
            unsent = list(cycle_ids[i:])
            logger.exception(
                "broker unreachable: settlements of cycles %s not sent; the next run sends them",
                unsent,
            )
            cycles_release_claim(cycle_ids=unsent)
            return list(cycle_ids[:i]), unsent
    return list(cycle_ids), []


@shared_task(
    name="fund.tasks.settle_cycle",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError, BooksBusy),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=8,
)
def settle_cycle(self, cycle_id: int, ignore_grace: bool = False) -> dict:
    """Settles one cycle; a repeat delivery finds it settled and does nothing."""
    try:
        outcome = settlement_cycle_settle(cycle_id=cycle_id, ignore_grace=ignore_grace)
    except ValidationError as exc:
        logger.warning("cycle %s not settled: %s", cycle_id, exc)
        return {"cycle": cycle_id, "posted": False, "error": exc.messages}
    return {"cycle": cycle_id, "posted": outcome.posted, "status": outcome.cycle.status}


@shared_task(name="fund.tasks.sign_log_checkpoints", ignore_result=True)
def sign_log_checkpoints() -> dict:
    """Every minute (beat): a signed checkpoint of each fund's log that grew since its last."""
    return checkpoints_sign_all()


@shared_task(name="fund.tasks.prune_idempotency_keys", ignore_result=True)
def prune_idempotency_keys() -> int:
    """Every hour (beat): forgets the Idempotency-Keys older than IDEMPOTENCY_KEY_HOURS."""
    return idempotency_keys_prune()
