"""Cached public pages, refreshed whenever the books change.

Every write that changes what a public page shows (a fund record, a cycle opened, closed or
settled) moves the books' version after its transaction commits; cached pages are keyed by that
version, so the next request renders afresh and a page never shows a stale balance. Redis in
production, local memory by default (the CACHES setting).
"""

import functools
import time

from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponse

VERSION_KEY = "fund:books-version"
TIMEOUT = 60  # seconds: "change over 24 hours" moves with the clock too


def books_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        version = cache.get(VERSION_KEY)
    return version


def books_changed() -> None:
    """Call inside the transaction that changed the books: takes effect once it commits."""
    transaction.on_commit(lambda: cache.set(VERSION_KEY, time.time_ns(), timeout=None))


def cached_page(view):
    """Caches a public page for anonymous visitors (logged-in users see their own menu)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "GET" or request.user.is_authenticated:
            return view(request, *args, **kwargs)
        key = f"page:{books_version()}:{request.get_full_path()}"
        body = cache.get(key)
        if body is not None:
            return HttpResponse(body)
        response = view(request, *args, **kwargs)
        if response.status_code == 200:
            cache.set(key, response.content, timeout=TIMEOUT)
        return response

    return wrapper
