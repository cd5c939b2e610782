"""Who may call what: the trading engine, traders, settlement staff."""

from rest_framework.permissions import BasePermission

from statements.models import ApiToken

SETTLE_PERMISSION = "fund.settle_cycles"


class IsEngine(BasePermission):
    """Only the trading engine's service credential (an engine-kind API token)."""

    message = "Only the trading engine's credential may send data here."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiToken) and request.auth.kind == ApiToken.Kind.ENGINE


def is_trader(user) -> bool:
    return bool(user and user.is_authenticated and hasattr(user, "trader_account"))


class IsTrader(BasePermission):
    """A logged-in user with a trading account (by session or a personal token)."""

    message = "This is for traders: log in with an account that has a trading account."

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiToken) and request.auth.kind != ApiToken.Kind.PERSONAL:
            return False
        return is_trader(request.user)


def can_settle(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff and user.has_perm(SETTLE_PERMISSION))


class IsSettlementStaff(BasePermission):
    """Staff with the dedicated settlement permission (not every staff user)."""

    message = "This needs staff with the settlement permission."

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiToken) and request.auth.kind != ApiToken.Kind.PERSONAL:
            return False
        return can_settle(request.user)
