"""Celery tasks: thin wrappers that take ids and call the services."""

import logging
import smtplib
import time

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.celery import dispatch
from fund.services import notices, webhooks
from fund.services.cycles import cycles_close_due, cycles_release_claim
from fund.services.idempotency import idempotency_keys_prune
from fund.services.locks import BooksBusy
from fund.services.settlement import settlement_cycle_settle, settlements_dead_claims
from fund.services.transparency import checkpoints_sign_all

logger = logging.getLogger(__name__)
# A fan-out task sends for about this long, then goes on in a new task (others get a turn).
TASK_BUDGET_SECONDS = 60
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


@shared_task(name="fund.tasks.fan_out_events", ignore_result=True)
def fan_out_events() -> dict:
    """After each commit with events, and every WEBHOOK_SWEEP_SECONDS (beat): the events become
    webhook deliveries and emails (fund/services/webhooks.py, notices.py), and whatever is due is
    sent to the workers, a task per endpoint and per cycle."""
    made = webhooks.webhooks_fan_out()
    mailed = notices.cycle_emails_fan_out()
    endpoints = webhooks.endpoints_due()
    cycles = notices.cycles_with_emails_due()
    for endpoint_id in endpoints:
        dispatch(deliver_webhooks, endpoint_id)
    for cycle_id, tasks in cycles.items():
        for _ in range(tasks):
            dispatch(send_cycle_emails, cycle_id)
    return {
        "deliveries": made,
        "cycles_mailed": mailed,
        "endpoints": endpoints,
        "cycles": sorted(cycles),
    }


@shared_task(name="fund.tasks.deliver_webhooks", ignore_result=True, acks_late=True)
def deliver_webhooks(endpoint_id: int) -> dict:
    """Sends one endpoint's due deliveries for up to a minute; goes on in a new task if more."""
    eager = deliver_webhooks.app.conf.task_always_eager  # in-process: no task to go on in
    budget = float("inf") if eager else TASK_BUDGET_SECONDS
    run = webhooks.webhook_endpoint_deliver(endpoint_id=endpoint_id, budget_seconds=budget)
    if run.more:
        dispatch(deliver_webhooks, endpoint_id)
    return {"endpoint": endpoint_id, "delivered": run.delivered, "failed": run.failed}


@shared_task(
    name="fund.tasks.send_cycle_emails",
    bind=True,
    ignore_result=True,
    acks_late=True,
    autoretry_for=(OSError, smtplib.SMTPException, OperationalError, InterfaceError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=12,
)
def send_cycle_emails(self, cycle_id: int) -> dict:
    """Sends one batch of a cycle's apportionment emails; the next batch in a new task."""
    deadline = time.monotonic() + TASK_BUDGET_SECONDS
    eager = self.app.conf.task_always_eager
    counts = {"cycle": cycle_id, "sent": 0, "skipped": 0}
    while True:
        sent = notices.cycle_emails_send(cycle_id=cycle_id)
        counts["sent"] += sent.sent
        counts["skipped"] += sent.skipped
        if not sent.more:
            return counts
        if not eager and time.monotonic() >= deadline:
            dispatch(send_cycle_emails, cycle_id)
            return counts


@shared_task(
    name="fund.tasks.notify_webhook_switched_off",
    ignore_result=True,
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=60,
    max_retries=10,
)
def notify_webhook_switched_off(endpoint_id: int) -> int:
    """Emails the settlement staff that an endpoint was switched off, and why."""
    return webhooks.switched_off_notice_send(endpoint_id=endpoint_id)
