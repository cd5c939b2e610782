"""API throttles that keep the reads they guard up when their cache is down."""

import logging

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class FailOpen:
    """When the cache (Redis) cannot be reached the request is let through and the failure logged:
    these throttles guard reads, and an outage of the cache should not take them down with it."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.warning("throttle cache unavailable: letting a request through", exc_info=True)
            return True


class PublicAnonRateThrottle(FailOpen, AnonRateThrottle):
    """DRF's anonymous rate limit for the public reads (API_ANON_RATE)."""


class ProofThrottle(FailOpen, UserRateThrottle):
    """A trader's inclusion proofs: the first of a cycle computes its block roots (about a second
    for a million participants), later ones read a block of leaves."""

    scope = "proof"
    rate = "30/minute"
