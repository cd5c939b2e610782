"""JSON in which numbers stay exact: 0.1 arrives as Decimal("0.1"), never as a float; NaN and
Infinity are refused as invalid JSON; a body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused (413)."""

import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser, get_encoding

from statements.money import JSONNumber


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "too_large"


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number")


class ExactJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        try:
            return json.loads(
                body.decode(encoding), parse_float=JSONNumber, parse_constant=_refuse_constant
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ParseError("The body is nested too deeply.") from None
