"""Idempotency keys of money-moving API requests: claimed, answered and expired.

A request with an Idempotency-Key runs in one transaction with its claim and its stored answer
(fund/api/idempotency.py), so a crash at any point leaves either all three or none. A key is
remembered for IDEMPOTENCY_KEY_HOURS; after that the same key is a new request, and the
periodic task `prune_idempotency_keys` removes the expired rows.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from fund.models import IdempotentRequest


def idempotency_expiry(now: datetime | None = None) -> datetime:
    """Keys claimed before this moment have expired."""
    return (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: `row` is ours to answer in, or `previous` answered it."""

    row: IdempotentRequest | None = None
    previous: IdempotentRequest | None = None


def idempotency_claim(*, user, key: str, fingerprint: str) -> Claim:
    """Claims the key inside the caller's transaction. A concurrent request with the same key
    waits on the unique key until the first commits (then replays its answer) or rolls back
    (then claims it)."""
    assert connection.in_atomic_block, "a key is claimed in the request's own transaction"
    try:
        with transaction.atomic():
            IdempotentRequest.objects.filter(
                user=user, key=key, created_at__lt=idempotency_expiry()
            ).delete()
            row = IdempotentRequest.objects.create(
                user=user, key=key, fingerprint=fingerprint, status_code=0, response={}
            )
    except IntegrityError:
        return Claim(previous=IdempotentRequest.objects.get(user=user, key=key))
    return Claim(row=row)


def idempotency_answer(*, claim: Claim, status_code: int, response) -> None:
    """Stores the answer with the work, in the same transaction."""
    assert connection.in_atomic_block
    claim.row.status_code, claim.row.response = status_code, response
    claim.row.save(update_fields=["status_code", "response"])


def idempotency_forget(*, user, key: str) -> None:
    """Forgets a key's answer after what was to follow its commit failed, so that the request
    can be sent again (it is then done again: "settle now" of a closed cycle is harmless)."""
    IdempotentRequest.objects.filter(user=user, key=key).delete()


def idempotency_keys_prune(*, now: datetime | None = None) -> int:
    """Removes the expired keys; returns how many."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=idempotency_expiry(now)).delete()
    return deleted
