"""Values worth keeping in the cache between requests, where an unreachable cache costs only
the computation: the cache is an optimisation, never a dependency."""

import logging
from collections.abc import Callable

from django.core.cache import cache

logger = logging.getLogger(__name__)


def cached[T](key: str, compute: Callable[[], T], *, timeout: float) -> T:
    """The value kept under `key`, or `compute()`'s, kept for `timeout` seconds."""
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("cache unavailable: computing %s", key, exc_info=True)
        value = None
    if value is not None:
        return value
    value = compute()
    try:
        cache.set(key, value, timeout=timeout)
    except Exception:
        logger.warning("cache unavailable: %s not kept", key, exc_info=True)
    return value
