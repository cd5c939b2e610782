"""The engine's batches decoded at the door: a strict, typed decoder (msgspec) for the usual,
well-formed batch, and bounded work for everything else.

A body is refused before it is read when it says it is larger than DATA_UPLOAD_MAX_MEMORY_SIZE,
and before it is parsed when it turns out to be. A well-formed batch is then decoded in one pass
straight into typed items: every field present and nothing else, identifiers in their one
canonical form (docs/rules.md §4), amounts as plain decimal text, moments with a time zone, at
most MAX_BATCH items; no NUL byte, lone surrogate or nesting deeper than the type gets through.
The services still check everything that needs the books (contracts, cycles, ranges, places).

A body the typed decoder refuses is read once more the slow, forgiving way (ExactJSONParser),
so that the answer names every problem as clearly as the services do: the item count is checked
before any item is looked at, and at most MAX_ITEM_ERRORS items are named, with how many more
(fund.services.liquidations).
"""

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from fund.api.parsers import JSON_TYPE, ExactJSONParser, PayloadTooLarge, check_media_type
from fund.api.serializers.ingestion import IDENTIFIER_PATTERN, SYMBOL_PATTERN
from fund.services.liquidations import MAX_BATCH, batch_check, item_errors_raise
from statements.money import DECIMAL_TEXT

_Identifier = Annotated[str, msgspec.Meta(pattern=IDENTIFIER_PATTERN)]
_Symbol = Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN)]
_Positive = Annotated[str, msgspec.Meta(pattern=f"^{DECIMAL_TEXT.replace('-?', '')}$")]
_Signed = Annotated[str, msgspec.Meta(pattern=f"^{DECIMAL_TEXT}$")]
_Moment = Annotated[datetime, msgspec.Meta(tz=True)]
_PositionId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class Takeover(msgspec.Struct, forbid_unknown_fields=True):
    """One closed liquidation takeover, as fund.services.liquidations.TakeoverInput."""

    external_id: _Identifier
    contract: _Symbol
    side: Literal["long", "short"]
    quantity: _Positive
    takeover_price: _Positive
    close_price: _Positive
    remaining_margin: _Positive
    taken_over_at: _Moment
    closed_at: _Moment


class PositionProfit(msgspec.Struct, forbid_unknown_fields=True):
    """One position's profit, as fund.services.liquidations.PositionProfitInput."""

    position_id: _PositionId
    account: _Identifier
    contract: _Symbol
    profit: _Signed


class IndexPrice(msgspec.Struct, forbid_unknown_fields=True):
    """One index price, as fund.services.prices.IndexPriceInput."""

    asset: _Symbol
    price: _Positive
    at: _Moment


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    """A batch the typed decoder took."""


class TakeoverBatch(Batch, forbid_unknown_fields=True):
    items: Annotated[list[Takeover], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class PositionProfitBatch(Batch, forbid_unknown_fields=True):
    cycle: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    items: Annotated[list[PositionProfit], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class IndexPriceBatch(Batch, forbid_unknown_fields=True):
    items: Annotated[list[IndexPrice], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchParser(BaseParser):
    """Parses an intake body into a typed batch (`batch_type`) or, failing that, into plain
    JSON for the view to name what is wrong (the module's docstring)."""

    media_type = JSON_TYPE
    decoder: msgspec.json.Decoder

    def parse(self, stream, media_type=None, parser_context=None):
        check_media_type(media_type)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        try:
            return self.decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        except RecursionError:
            raise ParseError("The body is nested too deeply.") from None
        return ExactJSONParser.decode(body)


class TakeoverBatchParser(BatchParser):
    decoder = msgspec.json.Decoder(TakeoverBatch)


class PositionProfitBatchParser(BatchParser):
    decoder = msgspec.json.Decoder(PositionProfitBatch)


class IndexPriceBatchParser(BatchParser):
    decoder = msgspec.json.Decoder(IndexPriceBatch)


def batch_items(data, required: tuple[str, ...], top: tuple[str, ...] = ("items",)) -> list:
    """The batch's items: a typed batch's as they are; plain JSON's each checked to have exactly
    the `required` fields, the body itself only the `top` keys (an unknown key is refused, not
    ignored: it is a client's mistake). The count is checked before any item is looked at."""
    if isinstance(data, Batch):
        return data.items
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValidationError({"items": 'Send {"items": [...]}: a list of objects.'})
    unknown = sorted(set(data) - set(top))
    if unknown:
        raise ValidationError(
            {name: f"Unknown field {name!r}: send only {', '.join(top)}." for name in unknown}
        )
    items = data["items"]
    batch_check(items)
    errors: dict[int, dict[str, str]] = {}
    fields = set(required)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[index] = {f"items[{index}]": f"Item {index}: must be an object."}
            continue
        if item.keys() == fields and None not in item.values() and "" not in item.values():
            continue  # the usual case, checked at once
        mine = errors.setdefault(index, {})
        ident = item.get("external_id", item.get("position_id", item.get("asset")))
        for name in required:
            if item.get(name) in (None, ""):
                mine[f"items[{index}].{name}"] = (
                    f"Item {index} ({ident!r}): this field is required."
                )
        unknown = sorted(set(item) - fields)
        if unknown:
            mine[f"items[{index}].{unknown[0]}"] = f"Item {index}: unknown field {unknown[0]!r}."
    item_errors_raise(errors)
    return items
