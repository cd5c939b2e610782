"""The funds' transparency logs as C2SP tlog-tiles serves them, for any tlog client or witness:

    /log/vkey                               the verifier key (C2SP vkey), text
    /log/<ASSET>/checkpoint                 the latest signed checkpoint (short cache lifetime)
    /log/<ASSET>/tile/<L>/<N>[.p/<W>]       hashes of the tree's level 8·L (32 bytes each)
    /log/<ASSET>/tile/entries/<N>[.p/<W>]   records 256·N + 1 …: each entry (a record's canonical
                                            bytes) after its length as a big-endian uint16

<N> is written in groups of three digits, all but the last prefixed with "x" (1234067 →
x001/x234/067). A full tile never changes, so it is served with a year-long, immutable cache
lifetime; a partial tile's W hashes never change either, but a client asks for it only until the
tile is full. Everything comes from the tiles the ledger keeps (fund/services/transparency.py),
the entry bundles from the records themselves.
"""

import hashlib
import logging
import re

from django.http import Http404, HttpResponse
from django.views.decorators.http import require_safe

from fund.lookups import fund_log_or_404
from fund.services.transparency import (
    LogKeyError,
    checkpoint_latest,
    log_entries,
    log_size,
    log_tile,
    log_vkey,
)
from fund.tlog import HASH, TILE_WIDTH

logger = logging.getLogger(__name__)
IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_CACHE = "public, max-age=5"
MAX_LEVEL = 63
# level / index [.p/width]: the index in canonical three-digit groups, a width of 1 to 255.
TILE_PATH = re.compile(
    r"(?P<level>[0-9]|[1-5][0-9]|6[0-3])/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?"
)
ENTRIES_PATH = re.compile(
    r"(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?"
)


def tile_index_path(index: int) -> str:
    """C2SP tlog-tiles' writing of a tile index: 1234067 → x001/x234/067."""
    groups = []
    while True:
        index, group = divmod(index, 1000)
        groups.append(f"{group:03d}")
        if not index:
            break
    return "/".join(f"x{g}" for g in reversed(groups[1:])) + ("/" if groups[1:] else "") + groups[0]


def _index_of(text: str) -> int:
    index = int(text.replace("x", "").replace("/", ""))
    if tile_index_path(index) != text:  # x000/001 and the like: one name per tile
        raise Http404("Not a tile's canonical path.")
    return index


def _text(body: str, cache: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(body, content_type="text/plain; charset=utf-8", status=status)
    response["Cache-Control"] = cache
    return response


def _binary(body: bytes, cache: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/octet-stream")
    response["Cache-Control"] = cache
    response["ETag"] = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    return response


@require_safe
def vkey(request):
    try:
        key = log_vkey()
    except LogKeyError:
        logger.exception("the log's verifier key cannot be served")
        return _text("The log's key cannot be read just now.\n", "no-store", status=503)
    if not key:
        return _text("This site signs no log checkpoints: no signing key is configured.\n",
                     "no-store", status=404)  # fmt: skip
    return _text(key + "\n", "public, max-age=300")


@require_safe
def checkpoint(request, asset):
    fund = fund_log_or_404(asset_code=asset)
    latest = checkpoint_latest(fund)
    if latest is None:
        raise Http404("No checkpoint of this fund's log is signed yet.")
    return _text(latest.note, CHECKPOINT_CACHE)


@require_safe
def tile(request, asset, path):
    fund = fund_log_or_404(asset_code=asset)
    if path.startswith("entries/"):
        return _entries(fund, path.removeprefix("entries/"))
    match = TILE_PATH.fullmatch(path)
    if match is None:
        raise Http404("Not a tile's path: tile/<L>/<N>[.p/<W>].")
    level, index = int(match["level"]), _index_of(match["index"])
    width = int(match["width"] or TILE_WIDTH)
    hashes = log_tile(fund=fund, level=level, index=index)
    if len(hashes) < width * HASH:
        raise Http404("The log has no such tile (yet).")
    return _binary(hashes[: width * HASH], IMMUTABLE)


def _entries(fund, path: str):
    match = ENTRIES_PATH.fullmatch(path)
    if match is None:
        raise Http404("Not an entry bundle's path: tile/entries/<N>[.p/<W>].")
    index = _index_of(match["index"])
    width = int(match["width"] or TILE_WIDTH)
    first = index * TILE_WIDTH + 1
    if log_size(fund) < first + width - 1:
        raise Http404("The log has no such entry bundle (yet).")
    bundle = bytearray()
    for entry in log_entries(fund=fund, first=first, count=width):
        bundle += len(entry).to_bytes(2, "big") + entry
    return _binary(bytes(bundle), IMMUTABLE)
