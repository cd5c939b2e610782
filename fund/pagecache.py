"""Cached public pages, refreshed whenever the books change.

Every write that changes what a public page shows (a fund record, a cycle opened, closed or
settled) moves the books' version after its transaction commits; cached pages are keyed by that
version, so a page renders afresh once the version has moved (within PAGE_VERSION_SECONDS in other
processes). Only with a cache all web processes share (PAGE_CACHE: Redis in production).

The cache is an optimisation, never a dependency: when it cannot be reached, pages render
uncached and writes go on (their version bump is logged as lost; cached pages expire after
TIMEOUT seconds anyway), so a Redis outage neither fails an ingestion that has committed nor
takes the portal down.
"""

import functools
import logging
import time

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponse

logger = logging.getLogger(__name__)
VERSION_KEY = "fund:books-version"
TIMEOUT = 60  # seconds: "change over 24 hours" moves with the clock too


# A process reads the version from the shared cache at most every PAGE_VERSION_SECONDS (50 ms by
# default): a change shows on every page within that long after its commit, at once in the process
# that made it.
_memo: list = [0.0, None]  # [valid until (monotonic), version]


def books_version() -> int:
    now = time.monotonic()
    if _memo[1] is not None and _memo[0] > now:
        return _memo[1]
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        version = cache.get(VERSION_KEY)
    _memo[:] = [now + settings.PAGE_VERSION_SECONDS, version]
    return version


def _bump() -> None:
    version = time.time_ns()
    _memo[:] = [time.monotonic() + settings.PAGE_VERSION_SECONDS, version]
    try:
        cache.set(VERSION_KEY, version, timeout=None)
    except Exception:
        logger.warning("page cache unavailable: the books' version was not moved", exc_info=True)


def books_changed() -> None:
    """Call inside the transaction that changed the books: takes effect once it commits."""
    transaction.on_commit(_bump)


# Each process also keeps the pages it has served at the current version, so that a hit costs one
# small read of the version from the shared cache rather than the page's body. Keys carry the
# version: a write anywhere moves it and no process serves the older page again.
_local: dict[str, tuple[float, bytes]] = {}
LOCAL_MAX = 256


def _local_get(key: str) -> bytes | None:
    hit = _local.get(key)
    return hit[1] if hit and hit[0] > time.monotonic() else None


def _local_put(key: str, body: bytes) -> None:
    if len(_local) >= LOCAL_MAX:
        _local.clear()
    _local[key] = (time.monotonic() + TIMEOUT / 2, body)


def cached_page(view):
    """Caches a public page for anonymous visitors (logged-in users see their own menu; a
    visitor with a message waiting, such as "You are logged out", gets the page rendered)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if (
            not settings.PAGE_CACHE
            or request.method != "GET"
            or request.user.is_authenticated
            or len(messages.get_messages(request))  # a message for this visitor alone
        ):
            return view(request, *args, **kwargs)
        try:
            key = f"page:{books_version()}:{request.get_full_path()}"
            body = _local_get(key)
            if body is None and (body := cache.get(key)) is not None:
                _local_put(key, body)
        except Exception:
            logger.warning(
                "page cache unavailable: rendering %s uncached", request.path, exc_info=True
            )
            return view(request, *args, **kwargs)
        if body is not None:
            return HttpResponse(body)
        response = view(request, *args, **kwargs)
        if response.status_code == 200:
            _local_put(key, response.content)
            try:
                cache.set(key, response.content, timeout=TIMEOUT)
            except Exception:
                logger.warning("page cache unavailable: %s not stored", request.path, exc_info=True)
        return response

    return wrapper
