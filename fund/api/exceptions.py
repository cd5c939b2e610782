"""Errors as the API answers them: 400 with field messages for bad input (Django's or DRF's
ValidationError), 409 for a clash with what is booked, 413 for an oversize body, 503 with
Retry-After while the books are busy."""

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from fund.api.parsers import PayloadTooLarge
from fund.errors import SEND_FAILED, ConflictError
from fund.services.locks import BooksBusy
from fund.tasks import broker_unreachable


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            body = {
                field: [str(m) for m in messages] for field, messages in exc.message_dict.items()
            }
        else:
            body = {"non_field_errors": exc.messages}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ConflictError):
        return Response(
            {"detail": exc.message, "code": exc.code, **exc.details},
            status=status.HTTP_409_CONFLICT,
        )
    if broker_unreachable(exc):
        return Response(
            {"detail": SEND_FAILED, "code": "workers_unreachable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "30"},
        )
    if isinstance(exc, BooksBusy):
        return Response(
            {"detail": exc.message, "code": "books_busy"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("The request body is larger than the server accepts.")
    return drf_exception_handler(exc, context)
