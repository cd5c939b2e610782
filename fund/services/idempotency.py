"""Idempotency keys of money-moving API requests: claimed, answered and expired.

A request with an Idempotency-Key runs in one transaction with its claim and its stored answer
(fund/api/idempotency.py), so a crash at any point leaves either all three or none. A key is
remembered for IDEMPOTENCY_KEY_HOURS; after that the same key is a new request, and the
periodic task `prune_idempotency_keys` removes the expired rows.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from fund.models import IdempotentRequest
from fund.services.locks import idempotent_transaction


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


def idempotency_fingerprint(what: str, data) -> str:
    """SHA-256 of what a request asks (method and path) and its data: the same key with another
    fingerprint is another request."""
    body = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(f"{what}\n{body}".encode()).hexdigest()


@dataclass(frozen=True)
class Once:
    """What idempotency_once did: `previous` answered the key before (nothing ran), or `result`
    is what the work returned now."""

    previous: IdempotentRequest | None = None
    result: Any = None


def idempotency_once(
    *, user, key: str, fingerprint: str, work: Callable[[], tuple[Any, tuple[int, Any] | None]]
) -> Once:
    """Claims the key, runs `work` and stores its answer, all in one transaction. `work()`
    returns (result, answer): answer = (status code, response) to store, or None to keep nothing
    (the transaction rolls back and the key stays free). When what follows the commit fails (a
    task's send), the stored answer is forgotten, so that the request can be sent again."""
    committed: list[bool] = []
    try:
        with idempotent_transaction():
            claim = idempotency_claim(user=user, key=key, fingerprint=fingerprint)
            if claim.previous is not None:
                return Once(previous=claim.previous)
            # The first callback on commit: whatever fails after it, the answer is stored.
            transaction.on_commit(lambda: committed.append(True))
            result, answer = work()
            if answer is None:
                transaction.set_rollback(True)
            else:
                idempotency_answer(claim=claim, status_code=answer[0], response=answer[1])
            return Once(result=result)
    except Exception:
        if committed:
            idempotency_forget(user=user, key=key)
        raise


def idempotency_keys_prune(*, now: datetime | None = None) -> int:
    """Removes the expired keys; returns how many."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=idempotency_expiry(now)).delete()
    return deleted
