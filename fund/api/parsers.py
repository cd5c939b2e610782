"""JSON in which numbers stay exact: 0.1 arrives as Decimal("0.1"), never as a float; NaN and
Infinity are refused as invalid JSON; a body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused (413).

Content types, read strictly (RFC 8259 §8.1 and §11): the body must be sent as
`application/json` (the type and subtype compared without regard to case). JSON exchanged
between systems is UTF-8, so the one parameter taken is `charset=utf-8` (any case, quoted or
not), which says what is true anyway: `application/json; charset=utf-8` is accepted like
`application/json`. Everything else is answered 415 Unsupported Media Type and not read: another
type (`text/plain`, `application/json-patch+json`, `application/jsonx`), a wildcard (`*/*`,
`application/*`, which DRF alone would hand to this parser), a charset other than utf-8
(`utf8`, `latin-1`, `utf-16` …) and any other parameter, since application/json defines none."""

import json

from django.conf import settings
from django.utils.http import parse_header_parameters
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from config.text import first_unstorable
from statements.money import JSONNumber

JSON_TYPE = "application/json"
JSON_CHARSET = "utf-8"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "too_large"


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number")


def check_media_type(media_type: str | None) -> None:
    """Raises UnsupportedMediaType (415) unless `media_type` is application/json, with at most
    charset=utf-8 (the module's docstring)."""
    try:
        full_type, params = parse_header_parameters(media_type or "")
    except ValueError:  # longer than Django reads
        full_type, params = "", {}
    if full_type != JSON_TYPE:
        raise UnsupportedMediaType(
            media_type, detail=f'Unsupported media type "{media_type}": send {JSON_TYPE}.'
        )
    charset = params.pop("charset", JSON_CHARSET)
    if charset.lower() != JSON_CHARSET or params:
        raise UnsupportedMediaType(
            media_type,
            detail=f'Unsupported media type "{media_type}": send {JSON_TYPE} in UTF-8, '
            f"with no parameter but charset={JSON_CHARSET}.",
        )


class ExactJSONParser(JSONParser):
    media_type = JSON_TYPE

    def parse(self, stream, media_type=None, parser_context=None):
        check_media_type(media_type)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        return self.decode(body)

    @staticmethod
    def decode(body: bytes):
        """UTF-8 JSON text to Python values, numbers exact, text storable (the module's
        docstring); ParseError (400) otherwise."""
        try:
            data = json.loads(
                body.decode(JSON_CHARSET), parse_float=JSONNumber, parse_constant=_refuse_constant
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ParseError("The body is nested too deeply.") from None
        problem = first_unstorable(data)
        if problem is not None:  # PostgreSQL stores neither; UTF-8 has no lone surrogate
            raise ParseError(f"{problem[0]}: the text {problem[1]}.")
        return data
