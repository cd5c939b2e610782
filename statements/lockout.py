"""The login lockout: a password is checked only after a slot for it was taken, atomically, from
two budgets, the client address's and the account's; a wrong password keeps its slots for the
rest of the window, a right one (or a refused attempt) gives them back.

Every password check of the portal goes through `login_attempt`: the authentication backend
(`LockoutModelBackend`, so `/accounts/login/`, `/admin/login/` and any other caller of Django's
`authenticate()`) and the old-password check of the password change forms (statements/forms.py).

- An account (username, compared case-insensitively) has LOGIN_ACCOUNT_FAILURES slots per
  window of LOGIN_LOCKOUT_SECONDS, whichever address the attempts come from: once they are used,
  the account is locked for every address until the window ends, its right password included.
- An address (IPv4, or an IPv6 /64) has LOGIN_ADDRESS_FAILURES slots per window over all the
  accounts it tries: once they are used, that address is refused for every account, and the
  accounts it has not yet used up stay open for everyone else. One address can thus lock at
  most LOGIN_ADDRESS_FAILURES / LOGIN_ACCOUNT_FAILURES accounts per window.

Why not django-axes (8.3.1): it checks whether a client is locked before the password check
(`AxesBackend.authenticate`) but counts the failure afterwards, in its `user_login_failed`
signal handler. Parallel attempts all pass the check before the first failure is counted, so a
burst has every one of its passwords checked: the very bug this module closes. Here the count
comes first: `INSERT … ON CONFLICT DO UPDATE SET used = used + 1 … RETURNING used` is one
statement, serialised on the row by the database (PostgreSQL and SQLite alike), so of any number
of concurrent attempts, in any number of processes, at most the budget get a slot.

The budgets live in the database, not the cache: shared by every web process whatever the cache
(local memory in the demo), and signing in goes on during a Redis outage. When the budget cannot
be read or taken (the database fails), the attempt is refused ("unavailable"): no password is
checked uncounted.
"""

import hashlib
import ipaddress
import logging
import math
import time
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections, router
from django.db.models import F

from statements.models import LoginBudget

logger = logging.getLogger(__name__)


class LoginRefused(Exception):
    """No password was checked: `reason` is "locked" (a budget is used up, for `retry_after`
    more seconds) or "unavailable" (the budgets could not be read)."""

    def __init__(self, reason: str, retry_after: int = 60):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Slot:
    key: str
    window_ends: int


def _now() -> float:
    return time.time()


def account_key(username) -> str:
    """One key per account whatever the case or Unicode form typed; hashed, so that any length
    fits and no username is stored."""
    text = unicodedata.normalize("NFKC", str(username)).casefold()
    return "account:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def address_key(request) -> str | None:
    """The client's address (config/middleware.py puts the proxy's forwarded one in REMOTE_ADDR
    behind the proxy); an IPv6 client by its /64, which one subscriber usually holds whole."""
    if request is None:
        return None
    raw = request.META.get("REMOTE_ADDR", "")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "address:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    if address.version == 6:
        if address.ipv4_mapped:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"address:{address}"


def _reserve(key: str, budget: int, now: float) -> tuple[_Slot, bool]:
    """Takes one slot of `key`'s budget in one atomic statement (a new window when the last one
    has ended), and says whether it was within the budget."""
    using = router.db_for_write(LoginBudget)
    connection = connections[using]
    q = connection.ops.quote_name
    table, used, ends = q(LoginBudget._meta.db_table), q("used"), q("window_ends")
    current = int(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({q('key')}, {used}, {ends}) VALUES (%s, 1, %s) "
            f"ON CONFLICT ({q('key')}) DO UPDATE SET "
            f"{used} = CASE WHEN {table}.{ends} <= %s THEN 1 ELSE {table}.{used} + 1 END, "
            f"{ends} = CASE WHEN {table}.{ends} <= %s THEN excluded.{ends} "
            f"ELSE {table}.{ends} END "
            f"RETURNING {used}, {ends}",
            [key, current + settings.LOGIN_LOCKOUT_SECONDS, current, current],
        )
        count, window_ends = cursor.fetchone()
    return _Slot(key, window_ends), count <= budget


def _release(slots) -> None:
    """Gives slots back, each to the window it was taken from only."""
    for slot in slots:
        LoginBudget.objects.filter(key=slot.key, window_ends=slot.window_ends, used__gt=0).update(
            used=F("used") - 1
        )


def login_attempt(request, username, verify):
    """Calls `verify()` (the password check: the user, or None when it failed) only once a slot
    of the address's budget, then one of the account's, is taken; raises LoginRefused otherwise.

    A refused attempt and a right password give their slots back; a wrong password keeps them.
    So `used` is the window's failures plus the checks under way, and of any number of attempts
    at once at most the budget's worth of wrong passwords is ever checked."""
    now = _now()
    budgets = [(account_key(username), settings.LOGIN_ACCOUNT_FAILURES)]
    address = address_key(request)
    if address is not None:  # the address first: a used-up address costs the account nothing
        budgets.insert(0, (address, settings.LOGIN_ADDRESS_FAILURES))
    taken = []
    try:
        for key, budget in budgets:
            slot, within = _reserve(key, budget, now)
            taken.append(slot)
            if not within:
                _release(taken)
                raise LoginRefused("locked", retry_after=max(1, math.ceil(slot.window_ends - now)))
    except DatabaseError:
        logger.warning("login budgets unavailable: the attempt is refused", exc_info=True)
        raise LoginRefused("unavailable") from None
    result = verify()
    if result is not None:
        try:
            _release(taken)
            LoginBudget.objects.filter(window_ends__lte=int(now)).delete()  # ended windows
        except DatabaseError:  # the slots stay taken: stricter, never looser
            logger.warning("login budgets unavailable: slots not given back", exc_info=True)
    return result


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend behind `login_attempt`: a refused attempt stops authenticate()
    (PermissionDenied) and leaves its reason on the request for the login forms' message."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if username is None or password is None:
            return None
        check = super().authenticate
        try:
            return login_attempt(
                request, username, lambda: check(request, username, password, **kwargs)
            )
        except LoginRefused as refusal:
            if request is not None:
                request.login_refusal = refusal
            raise PermissionDenied(refusal.reason) from None

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        # ModelBackend's own async path would check the password without the lockout.
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.authenticate)(
            request, username=username, password=password, **kwargs
        )

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
