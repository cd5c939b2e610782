"""Throttling for anonymous API clients that keeps the public reads up when its cache is down."""

import logging

from rest_framework.throttling import AnonRateThrottle

logger = logging.getLogger(__name__)


class PublicAnonRateThrottle(AnonRateThrottle):
    """DRF's anonymous rate limit; when the cache (Redis) cannot be reached the request is let
    through and the failure logged: the public reads only read, and an outage of the cache
    should not take the transparency pages down with it."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.warning("throttle cache unavailable: letting an anonymous request through", exc_info=True)
            return True
