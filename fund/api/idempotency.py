"""Idempotency-Key on money-moving POSTs: the same key and body get the same answer once, even
when the first request's process died (fund/services/idempotency.py)."""

import functools
import hashlib
import json

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response

from fund.services.idempotency import idempotency_answer, idempotency_claim, idempotency_forget
from fund.services.locks import idempotent_transaction

IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Repeat a request safely: the same key and body get the same answer "
    "(keys are kept for 24 hours).",
)


def idempotent(view_method):
    """Runs the view, its key's claim and its stored answer in one transaction: a repeat with
    the same body gets the first answer again (Idempotent-Replayed: true), with another body a
    409. An error answer stores nothing, so the request can be sent again; nor does a failure of
    what runs after the commit (a settlement's send to the workers): its answer is forgotten."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 128:
            raise ValidationError({"Idempotency-Key": "At most 128 characters."})
        body = json.dumps(request.data, sort_keys=True, default=str)
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path}\n{body}".encode()
        ).hexdigest()
        committed: list[bool] = []
        try:
            return _run(view_method, self, request, args, kwargs, key, fingerprint, committed)
        except Exception:
            if committed:  # the work committed, then what follows its commit (a task's send) failed
                idempotency_forget(user=request.user, key=key)
            raise

    return wrapper


def _run(view_method, view, request, args, kwargs, key, fingerprint, committed) -> Response:
    with idempotent_transaction():
        claim = idempotency_claim(user=request.user, key=key, fingerprint=fingerprint)
        if claim.previous is not None:
            return _replay(claim.previous, fingerprint)
        # Runs first of the callbacks on commit: whatever fails after it, the answer is stored.
        transaction.on_commit(lambda: committed.append(True))
        response = view_method(view, request, *args, **kwargs)
        if response.status_code < 400:
            idempotency_answer(
                claim=claim, status_code=response.status_code, response=response.data
            )
        else:
            transaction.set_rollback(True)
        return response


def _replay(previous, fingerprint: str) -> Response:
    if previous.fingerprint != fingerprint:
        return Response(
            {"detail": "This Idempotency-Key was used for another request.",
             "code": "idempotency_key_reused"},
            status=status.HTTP_409_CONFLICT,
        )  # fmt: skip
    return Response(
        previous.response, status=previous.status_code, headers={"Idempotent-Replayed": "true"}
    )
