"""A fund's transparency log (fund/tlog.py): its tiles kept as records are appended, its roots and
proofs read from them, and its checkpoints signed.

- `log_append` runs inside ledger_append's transaction, the fund locked: the new records' leaf
  hashes go into the fund's tiles there, so the tree always holds exactly the booked records.
- `checkpoint_sign` signs the tree at its current size (C2SP tlog-checkpoint in a signed note)
  and stores it, never a size that does not extend the fund's latest checkpoint: before signing
  it proves, from the tiles, that the new tree contains the old one (a consistency proof checked
  with RFC 9162's verifier). A tree that fails is not signed; the error names both sizes.
- The key (an skey, fund/signednote.py) comes from LOG_SIGNING_KEY or the file named by
  LOG_SIGNING_KEY_FILE, never from the database; without one nothing is signed and the site says
  so at /log/vkey.
"""

import logging
import os
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from fund.chain import record_entry
from fund.models import Fund, FundRecord, LogCheckpoint, LogTile
from fund.pagecache import books_changed
from fund.signednote import Checkpoint, NoteError, Signer
from fund.tlog import (
    HASH,
    TILE_WIDTH,
    ProofError,
    TiledTree,
    tile_updates,
    tiles_needed,
    verify_consistency,
)

logger = logging.getLogger(__name__)


class LogInconsistent(Exception):
    """The stored tree does not extend the latest checkpoint: nothing is signed."""


class LogKeyError(Exception):
    """The configured signing key cannot be read."""


# Keeping the tree.


def log_append(*, fund: Fund, size: int, leaves: list[bytes]) -> None:
    """Appends leaf hashes to the fund's tree of `size` leaves (inside the ledger's transaction,
    the fund locked): reads the partial tiles, writes every tile that changed in one statement."""
    stored = _tiles(fund, {(level, index) for level, index, _ in tiles_needed(size)})
    partials = {level: hashes for (level, _), hashes in stored.items()}
    updates = tile_updates(size, partials, leaves)
    LogTile.objects.bulk_create(
        [
            LogTile(fund=fund, level=level, index=index, width=len(data) // HASH, hashes=data)
            for level, index, data in updates
        ],
        update_conflicts=True,
        unique_fields=["fund", "level", "index"],
        update_fields=["width", "hashes"],
    )


def log_size(fund: Fund) -> int:
    """The fund's tree size: the leaves its tiles hold (one index lookup). The ledger writes the
    tiles in the transaction that appends the records, so it is the number of records."""
    last = (
        LogTile.objects.filter(fund=fund, level=0)
        .order_by("-index")
        .values_list("index", "width")
        .first()
    )
    return last[0] * TILE_WIDTH + last[1] if last else 0


ENTRY_FIELDS = (
    "seq", "kind", "amount_units", "balance_after_units", "created_at", "takeover__external_id",
    "cycle_id", "corrects_id", "reason",
)  # fmt: skip


def entry_of(row: tuple, *, asset: str, precision: int) -> bytes:
    """The entry (canonical bytes) of a record read as ENTRY_FIELDS."""
    seq, kind, amount, balance, created_at, takeover, cycle, corrects, reason = row
    return record_entry(
        asset=asset, precision=precision, seq=seq, kind=kind, amount_units=amount,
        balance_after_units=balance, created_at=created_at, takeover=takeover or "",
        cycle_id=cycle, corrects_id=corrects, reason=reason,
    )  # fmt: skip


def log_entries(*, fund: Fund, first: int, count: int) -> list[bytes]:
    """The entries (canonical bytes) of the fund's records first … first + count − 1, in order."""
    rows = (
        FundRecord.objects.filter(fund=fund, seq__gte=first, seq__lt=first + count)
        .order_by("seq")
        .values_list(*ENTRY_FIELDS)
    )
    code, places = fund.asset.code, fund.asset.precision
    return [entry_of(row, asset=code, precision=places) for row in rows]


def log_entry(*, fund: Fund, seq: int) -> bytes | None:
    """One record's entry, None when the fund has no such record."""
    found = log_entries(fund=fund, first=seq, count=1)
    return found[0] if found else None


def log_tile(*, fund: Fund, level: int, index: int) -> bytes:
    """A tile's stored hashes (b"" when there is no such tile yet)."""
    hashes = (
        LogTile.objects.filter(fund=fund, level=level, index=index)
        .values_list("hashes", flat=True)
        .first()
    )
    return b"" if hashes is None else bytes(hashes)


def log_tree(*, fund: Fund, size: int) -> TiledTree:
    """The fund's tree at `size` (at most its current size), read from its tiles: a root or a
    proof reads the tiles it needs in one query."""

    return TiledTree(
        size,
        lambda level, index: log_tile(fund=fund, level=level, index=index),
        lambda keys: _tiles(fund, keys),
    )


def _tiles(fund: Fund, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored hashes of the fund's tiles (level, index) among `keys`, in one query."""
    if not keys:
        return {}
    where = Q()
    for level, index in keys:
        where |= Q(level=level, index=index)
    rows = LogTile.objects.filter(fund=fund).filter(where)
    return {(lv, ix): bytes(h) for lv, ix, h in rows.values_list("level", "index", "hashes")}


# Signing.


def log_origin(asset_code: str) -> str:
    """The checkpoint origin of a fund's log: `<site host>/log/<ASSET>`."""
    return f"{settings.LOG_ORIGIN_HOST}/log/{asset_code}"


def log_signer() -> Signer | None:
    """The signing key from the settings, or None when none is configured; LogKeyError when one
    is configured and cannot be read (manage.py check says so at start-up: fund/checks.py)."""
    text, path = settings.LOG_SIGNING_KEY, settings.LOG_SIGNING_KEY_FILE
    if text and path:
        raise LogKeyError("set LOG_SIGNING_KEY or LOG_SIGNING_KEY_FILE, not both")
    if path:
        try:
            stat = os.stat(path)
            text = _key_file(path, stat.st_mtime_ns, stat.st_size)
        except (OSError, UnicodeDecodeError) as exc:
            raise LogKeyError(f"LOG_SIGNING_KEY_FILE {path} cannot be read: {exc}") from None
        if not text.strip():
            raise LogKeyError(f"LOG_SIGNING_KEY_FILE {path} is empty")
    return _signer(text.strip()) if text else None


@lru_cache(maxsize=4)
def _key_file(path: str, mtime_ns: int, size: int) -> str:
    """The key file's text, read again only when the file changes (pages show its key)."""
    return Path(path).read_text(encoding="utf-8")


def log_vkey() -> str:
    """The verifier key to publish: LOG_VERIFIER_KEY when set (the web processes then need no
    private key), else the signing key's; "" when there is neither. LogKeyError as above."""
    if settings.LOG_VERIFIER_KEY:
        return settings.LOG_VERIFIER_KEY
    signer = log_signer()
    return signer.verifier.vkey if signer else ""


@lru_cache(maxsize=4)
def _signer(skey: str) -> Signer:
    try:
        return Signer.from_skey(skey)
    except NoteError as exc:
        raise LogKeyError(f"the log signing key is not a valid skey: {exc}") from None


def checkpoint_latest(fund: Fund) -> LogCheckpoint | None:
    return LogCheckpoint.objects.filter(fund=fund).order_by("-size").first()


def checkpoint_sign(*, fund: Fund, now=None) -> LogCheckpoint | None:
    """Signs the fund's tree at its current size unless its latest checkpoint has that size
    already; returns the fund's latest checkpoint (None when no key is configured). Raises
    LogInconsistent, signing nothing, when the tree does not extend the latest checkpoint."""
    signer = log_signer()
    if signer is None:
        return None
    with transaction.atomic():
        size = log_size(fund)
        last = checkpoint_latest(fund)
        if last is not None and last.size == size:
            return last
        if last is not None and size < last.size:
            raise LogInconsistent(
                f"{fund.asset.code}: the log has {size} records, fewer than the {last.size} "
                "of its latest checkpoint"
            )
        tree = log_tree(fund=fund, size=size)
        try:
            root = tree.root()
            if last is not None and last.size:
                verify_consistency(
                    last.size,
                    size,
                    tree.consistency_proof(last.size),
                    bytes.fromhex(last.root_hash),
                    root,
                )
        except ProofError as exc:
            raise LogInconsistent(
                f"{fund.asset.code}: the tree of size {size} does not extend the checkpoint of "
                f"size {last.size if last else 0} ({exc}); nothing signed"
            ) from None
        note = signer.sign(Checkpoint(log_origin(fund.asset.code), size, root).text())
        books_changed()  # the fund's page shows its latest checkpoint
        try:
            with transaction.atomic():
                return LogCheckpoint.objects.create(
                    fund=fund,
                    size=size,
                    root_hash=root.hex(),
                    note=note,
                    key_id=f"{signer.verifier.id:08x}",
                    signed_at=now or timezone.now(),
                )
        except IntegrityError:  # another signer stored this size first: the same tree
            return LogCheckpoint.objects.get(fund=fund, size=size)


def checkpoint_sign_after_settlement(*, fund: Fund, cycle_id: int) -> None:
    """A checkpoint of the fund's log right after a settlement has committed. A failure is logged,
    never raised (the settlement stands): the next minute's beat signs instead."""
    try:
        checkpoint_sign(fund=fund)
    except LogInconsistent:
        logger.critical("log checkpoint refused after cycle %s", cycle_id, exc_info=True)
    except Exception:
        logger.exception("log checkpoint after cycle %s not signed; the beat signs", cycle_id)


def checkpoints_sign_all() -> dict[str, int]:
    """Signs every fund whose log has grown since its latest checkpoint (the beat, each minute).
    A fund whose tree fails is logged and skipped; the others are still signed."""
    signed = {}
    for fund in Fund.objects.select_related("asset"):
        try:
            checkpoint = checkpoint_sign(fund=fund)
        except LogInconsistent:
            logger.critical("log checkpoint refused", exc_info=True)
            continue
        except LogKeyError:  # the same for every fund: said once
            logger.critical("no log checkpoint signed: the signing key", exc_info=True)
            return signed
        if checkpoint is not None:
            signed[fund.asset.code] = checkpoint.size
    return signed
