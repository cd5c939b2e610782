"""Writes of the statements app that move no money: API credentials."""

import hashlib
import hmac
import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from statements.models import ApiToken

TOKEN_PREFIX = "ifp"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# The most active personal tokens one trader holds at once (each is a way into their account).
PERSONAL_TOKENS_MAX = 20


@transaction.atomic(durable=True)
def api_token_create(*, user, kind: str, name: str) -> tuple[ApiToken, str]:
    """Makes a credential and returns it with the token itself, which is never stored."""
    limit = ApiToken._meta.get_field("name").max_length
    # Measured as sent: a name too long is refused, never cut to fit; spaces around it go.
    if not isinstance(name, str) or len(name) > limit or not name.strip():
        raise ValidationError({"name": f"Give the credential a name (1 to {limit} characters)."})
    name = name.strip()
    if kind not in ApiToken.Kind.values:
        raise ValidationError({"kind": f"Must be one of {', '.join(ApiToken.Kind.values)}."})
    if kind == ApiToken.Kind.PERSONAL:
        # One maker at a time per user (PostgreSQL), so that the cap holds under a crowd.
        list(get_user_model().objects.select_for_update().filter(pk=user.pk))
        active = ApiToken.objects.filter(user=user, kind=kind, revoked_at__isnull=True)
        if active.count() >= PERSONAL_TOKENS_MAX:
            raise ValidationError(
                {"name": f"You have {PERSONAL_TOKENS_MAX} active tokens, the most one trader "
                 "may hold: revoke one first."}
            )  # fmt: skip
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(
        user=user, kind=kind, name=name, prefix=prefix, digest=token_digest(token)
    )
    return row, token


def api_token_find(token: str) -> ApiToken | None:
    """The active credential a presented token belongs to, compared in constant time."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    row = (
        ApiToken.objects.select_related("user")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if row is None or not hmac.compare_digest(row.digest, token_digest(token)):
        return None
    return row


@transaction.atomic(durable=True)
def api_token_revoke(*, prefix: str, user=None) -> ApiToken:
    """Revokes a credential (only the owner's, when `user` is given); revoking twice is a no-op."""
    rows = ApiToken.objects.select_for_update().filter(prefix=prefix)
    if user is not None:
        rows = rows.filter(user=user)
    row = rows.first()
    if row is None:
        raise ValidationError({"prefix": f"There is no credential {prefix!r}."})
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
    return row
