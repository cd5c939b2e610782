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


class PersonPermission(BasePermission):
    """A person, by browser session or a personal token (never the engine's credential), who
    passes `allowed(user)`."""

    @staticmethod
    def allowed(user) -> bool:
        raise NotImplementedError

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiToken) and request.auth.kind != ApiToken.Kind.PERSONAL:
            return False
        return self.allowed(request.user)


class IsTrader(PersonPermission):
    """A logged-in user with a trading account."""

    message = "This is for traders: log in with an account that has a trading account."
    allowed = staticmethod(is_trader)


def can_settle(user) -> bool:
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(SETTLE_PERMISSION)
    )


class IsSettlementStaff(PersonPermission):
    """Staff with the dedicated settlement permission (not every staff user)."""

    message = "This needs staff with the settlement permission."
    allowed = staticmethod(can_settle)
