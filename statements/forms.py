"""Logging in, with repeated failures locked out for a while."""

import logging

from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

logger = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60


def _key(request, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request else ""
    return f"login-failures:{address}:{(username or '').strip().lower()}"


class ThrottledAuthenticationForm(AuthenticationForm):
    """After MAX_FAILURES failed logins for one username from one address, further attempts are
    refused for LOCKOUT_SECONDS, whatever the password."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed logins. Try again in 15 minutes.",
        "unavailable": "Signing in is unavailable for a moment. Try again in a minute.",
    }

    def clean(self):
        key = _key(self.request, self.cleaned_data.get("username"))
        try:
            failures = cache.get(key, 0)
        except Exception:  # the lockout cannot be checked: refuse rather than let guesses through
            logger.warning("login throttle cache unavailable", exc_info=True)
            raise ValidationError(self.error_messages["unavailable"], code="unavailable") from None
        if failures >= MAX_FAILURES:
            raise ValidationError(self.error_messages["locked"], code="locked")
        try:
            cleaned = super().clean()
        except ValidationError:
            try:
                try:
                    cache.incr(key)
                except ValueError:
                    cache.set(key, 1, timeout=LOCKOUT_SECONDS)
            except Exception:
                logger.warning(
                    "login throttle cache unavailable: a failure was not counted", exc_info=True
                )
            raise
        try:
            cache.delete(key)
        except Exception:
            logger.warning("login throttle cache unavailable: failures not reset", exc_info=True)
        return cleaned
