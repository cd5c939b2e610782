"""The admin audit trail: who did what, when and from where."""

from dataclasses import dataclass

from django.db import connection

from fund.models import AdminAction


@dataclass(frozen=True)
class Audit:
    """Who asks, and from where: passed by views to the services that record admin actions."""

    actor: object
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request) -> "Audit":
        return cls(
            actor=request.user,
            ip_address=request.META.get("REMOTE_ADDR") or None,
            user_agent=(request.META.get("HTTP_USER_AGENT") or "")[:300],
        )


def admin_action_record(
    *, audit: Audit, action: str, fund=None, cycle=None, record=None, details=None
) -> AdminAction:
    """Writes one audit row; inside the caller's transaction when there is one, so that the
    action and its record commit together."""
    assert connection.in_atomic_block, "an audit row commits with the action it records"
    return AdminAction.objects.create(
        actor=audit.actor,
        action=action,
        fund=fund,
        cycle=cycle,
        record=record,
        details=details or {},
        ip_address=audit.ip_address,
        user_agent=audit.user_agent,
    )
