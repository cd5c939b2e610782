"""The fund ledger's hash chain: each record's hash covers its published fields and the
previous record's hash, so changing, deleting or reordering any record breaks every hash after it.

Canonical form (anyone can recompute it from the public API):
    hash = SHA-256( previous hash (64 hex digits; 64 zeros for a fund's first record)
                    + "\\n"
                    + JSON array, compact, UTF-8, of these strings, in this order:
                      asset code, seq, kind, amount, balance after (decimal text with the asset's
                      places), created at (ISO 8601 UTC with microseconds and a "Z"),
                      the takeover's external id, the cycle id, the id of the corrected record,
                      the reason ("" where a field is empty) )
"""

import hashlib
import json
import re
from datetime import UTC, datetime
from functools import lru_cache

from statements.money import format_units

GENESIS = "0" * 64


def record_hash(*, previous: str, **record) -> str:
    """The record's chained hash: SHA-256(previous hash ‖ "\n" ‖ its entry)."""
    return chain_next(previous, record_entry(**record))


def chain_next(previous: str, entry: bytes) -> str:
    """The hash of the record whose entry is `entry`, after the record whose hash is `previous`."""
    return hashlib.sha256(previous.encode() + b"\n" + entry).hexdigest()


def record_entry(
    *,
    asset: str,
    precision: int,
    seq: int,
    kind: str,
    amount_units: int,
    balance_after_units: int,
    created_at: datetime,
    takeover: str = "",
    cycle_id: int | None = None,
    corrects_id: int | None = None,
    reason: str = "",
) -> bytes:
    """The record's canonical bytes: the UTF-8 JSON array of its published fields (the module's
    docstring). The hash chain covers them, and they are the record's entry in the fund's
    transparency log (fund/tlog.py)."""
    fields = [
        asset,
        str(seq),
        kind,
        format_units(amount_units, precision),
        format_units(balance_after_units, precision),
        _utc_text(created_at),
        takeover or "",
        "" if cycle_id is None else str(cycle_id),
        "" if corrects_id is None else str(corrects_id),
        reason or "",
    ]
    canonical = ",".join(
        f'"{text}"' if _JSON_AS_IS.fullmatch(text) else json.dumps(text, ensure_ascii=False)
        for text in fields
    )
    return f"[{canonical}]".encode()


# Text that JSON writes as it is between quotes (no quote, backslash or control character):
# written so directly, the canonical array is byte for byte json.dumps(fields, ensure_ascii=False,
# separators=(",", ":")).
_JSON_AS_IS = re.compile(r"[0-9A-Za-z .:_+-]*")


@lru_cache(maxsize=1024)  # a batch's records mostly share one moment
def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
