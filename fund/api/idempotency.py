"""Idempotency-Key on money-moving POSTs: the same key and body get the same answer once, even
when the first request's process died (fund/services/idempotency.py)."""

import functools

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response

from fund.services.idempotency import idempotency_fingerprint, idempotency_once

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
        fingerprint = idempotency_fingerprint(f"{request.method} {request.path}", request.data)

        def work():
            response = view_method(self, request, *args, **kwargs)
            kept = (response.status_code, response.data) if response.status_code < 400 else None
            return response, kept

        once = idempotency_once(user=request.user, key=key, fingerprint=fingerprint, work=work)
        return once.result if once.previous is None else _replay(once.previous, fingerprint)

    return wrapper


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
