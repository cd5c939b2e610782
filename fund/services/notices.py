"""Telling traders of their apportionments: the portal's notifications and one email per trader
per settled cycle.

Notifications cost nothing to fan out: a trader's unread notices are their apportionment
statements newer than `Profile.notices_read_at` (the statements are written by the settlement
anyway), counted through the statements' (account, time) index.

Emails are fanned out after the settlement's commit. The fan-out reads the outbox's
`cycle.settled` events after its cursor (FanOutCursor "emails") and writes one CycleEmail row per
participating trader who has a login, with the cursor's move, in one transaction (a worker
killed half-way writes nothing; the next run writes it all, the unique key keeping each row
once). Celery then sends them in batches: a batch is leased (EMAIL_LEASE_SECONDS), sent over one
connection, and marked sent. A worker killed between sending and marking leaves the lease to run
out and the batch is sent again: at least once, never lost; a batch is at most EMAIL_BATCH
emails. Opted-out traders and logins without an address are marked skipped, not sent.
"""

import logging
import smtplib
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, mailers
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from fund.models import CycleEmail, Event, FanOutCursor, PositionProfit, SettlementCycle
from statements.models import Profile, Statement

logger = logging.getLogger(__name__)
EmailStatus = CycleEmail.Status
EMAILS = "emails"


# --- Notifications -------------------------------------------------------------------------------


def profile_of(user) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def notices_unread_count(user) -> int:
    account = getattr(user, "trader_account", None)
    if account is None:
        return 0
    read_at = Profile.objects.filter(user=user).values_list("notices_read_at", flat=True).first()
    statements = Statement.objects.filter(account=account, type=Statement.Type.APPORTIONMENT)
    if read_at is not None:
        statements = statements.filter(created_at__gt=read_at)
    return statements.count()


def notices_mark_read(user, *, up_to) -> None:
    """Everything up to `up_to` (the newest notice the trader was shown) is read."""
    profile = profile_of(user)
    if profile.notices_read_at is None or up_to > profile.notices_read_at:
        profile.notices_read_at = up_to
        profile.save(update_fields=["notices_read_at"])


# --- Emails --------------------------------------------------------------------------------------


def cycle_emails_fan_out(*, batch: int = 200) -> list[int]:
    """Writes the emails of every cycle settled since the last run; returns those cycles."""
    cycles = []
    while True:
        with transaction.atomic():
            FanOutCursor.objects.get_or_create(name=EMAILS)
            # Another run holds it: that run writes these emails (one committed after it read
            # waits for the next sweep, WEBHOOK_SWEEP_SECONDS).
            cursor = FanOutCursor.objects.select_for_update(skip_locked=True).filter(name=EMAILS)
            cursor = cursor.first()
            if cursor is None:
                return cycles
            # The newest event first: one committed after it waits for the next run.
            last = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
            events = list(
                Event.objects.filter(
                    seq__gt=cursor.last, seq__lte=last, kind=Event.Kind.CYCLE_SETTLED
                )
                .order_by("seq")
                .values_list("seq", "cycle_id")[:batch]
            )
            for _seq, cycle_id in events:
                _emails_write(cycle_id)
                cycles.append(cycle_id)
            cursor.last = events[-1][0] if len(events) == batch else max(last, cursor.last)
            cursor.save(update_fields=["last"])
        if len(events) < batch:
            return cycles


def _emails_write(cycle_id: int) -> None:
    """One pending email per participating trader with a login (INSERT … SELECT: a million
    participants are one statement)."""
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO fund_cycleemail (cycle_id, account_id, status, attempts) "
            "SELECT DISTINCT %s, s.account_id, 'pending', 0 FROM fund_apportionment a "
            "JOIN statements_statement s ON s.id = a.statement_id "
            "JOIN statements_traderaccount t ON t.id = s.account_id "
            "WHERE a.cycle_id = %s AND t.user_id IS NOT NULL "
            "ON CONFLICT (cycle_id, account_id) DO NOTHING",
            [cycle_id, cycle_id],
        )


def cycles_with_emails_due() -> dict[int, int]:
    """The cycles with emails due, and how many tasks to send them with: a batch each, up to
    EMAIL_TASKS_PER_CYCLE (their batches never overlap: each leases its own rows)."""
    now = timezone.now()
    due = (
        CycleEmail.objects.filter(_email_due(now))
        .order_by()
        .values_list("cycle_id")
        .annotate(n=Count("id"))
    )
    batch, most = settings.EMAIL_BATCH, settings.EMAIL_TASKS_PER_CYCLE
    return {cycle_id: min(most, -(-n // batch)) for cycle_id, n in due}


def _email_due(now) -> Q:
    return Q(status=EmailStatus.PENDING) & (Q(leased_until__isnull=True) | Q(leased_until__lt=now))


@dataclass(frozen=True)
class Sent:
    sent: int
    skipped: int
    more: bool


# An address the mail server refuses, or that cannot be an address: that email is given up (its
# row failed), the others go on. Anything else (the server unreachable, the connection lost) ends
# the batch: what was sent is marked sent, the rest is let go for the task's retry.
REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, ValueError)


def cycle_emails_send(*, cycle_id: int, batch: int | None = None) -> Sent:
    """Sends one batch of the cycle's pending emails, one at a time over one connection, each
    marked sent as the batch ends (however it ends); `more` when others are still pending. A
    batch stops when half its lease has gone, so that no other worker takes it while it is being
    sent. An email tried EMAIL_MAX_ATTEMPTS times is given up (failed)."""
    batch = batch or settings.EMAIL_BATCH
    now = timezone.now()
    lease = settings.EMAIL_LEASE_SECONDS
    with transaction.atomic():
        CycleEmail.objects.filter(
            _email_due(now), cycle_id=cycle_id, attempts__gte=settings.EMAIL_MAX_ATTEMPTS
        ).update(status=EmailStatus.FAILED, leased_until=None)
        rows = list(
            CycleEmail.objects.select_for_update(skip_locked=True)
            .filter(_email_due(now), cycle_id=cycle_id)
            .order_by("id")[:batch]
        )
        if not rows:
            return Sent(0, 0, more=False)
        CycleEmail.objects.filter(pk__in=[r.pk for r in rows]).update(
            leased_until=now + timedelta(seconds=lease), attempts=F("attempts") + 1
        )
    cycle = SettlementCycle.objects.select_related("fund__asset").get(pk=cycle_id)
    messages, skipped = _messages(cycle, rows)
    sent, refused = [], []
    stop_at = time.monotonic() + lease / 2
    try:
        if messages:
            with mailers.default as mail:
                for row_id, message in messages:
                    if time.monotonic() >= stop_at:
                        break
                    try:
                        mail.send_messages([message])
                    except REFUSED as exc:
                        logger.warning("email %s refused: %s", row_id, exc)
                        refused.append(row_id)
                    else:
                        sent.append(row_id)
    finally:
        done = timezone.now()
        with transaction.atomic():
            CycleEmail.objects.filter(pk__in=sent).update(
                status=EmailStatus.SENT, sent_at=done, leased_until=None
            )
            CycleEmail.objects.filter(pk__in=skipped).update(
                status=EmailStatus.SKIPPED, leased_until=None
            )
            CycleEmail.objects.filter(pk__in=refused).update(
                status=EmailStatus.FAILED, leased_until=None
            )
            untried = {r.pk for r in rows} - set(sent) - set(skipped) - set(refused)
            CycleEmail.objects.filter(pk__in=untried).update(leased_until=None)
    more = CycleEmail.objects.filter(_email_due(done), cycle_id=cycle_id).exists()
    return Sent(len(sent), len(skipped), more=more)


def _messages(cycle: SettlementCycle, rows: list[CycleEmail]):
    """The batch's emails, (row id, message) each, and the rows not to send (opted out, no
    address, an inactive login)."""
    by_account = {r.account_id: r for r in rows}
    users = {
        u.trader_account.id: u
        for u in get_user_model()
        .objects.filter(trader_account__id__in=by_account)
        .select_related("trader_account", "profile")
    }
    lines = defaultdict(list)
    # From the positions (their account index), not the cycle's apportionments: a batch reads
    # its own traders' rows, not the whole cycle's.
    for position in (
        PositionProfit.objects.filter(
            cycle=cycle, account_id__in=by_account, apportionment__isnull=False
        )
        .select_related("contract", "apportionment")
        .order_by("apportionment__rank")
    ):
        lines[position.account_id].append(position)
    messages, skipped = [], []
    for account_id, row in by_account.items():
        user = users.get(account_id)
        profile = getattr(user, "profile", None) if user else None
        wants = profile is None or profile.email_apportionments
        if user is None or not user.email or not wants or not user.is_active:
            skipped.append(row.pk)
            continue
        messages.append((row.pk, _message(cycle, user, lines[account_id])))
    return messages, skipped


def _message(cycle: SettlementCycle, user, positions: list[PositionProfit]):
    asset = cycle.fund.asset
    site = settings.SITE_URL.rstrip("/")
    statements = site + reverse("fund:my-statements")
    context = {
        "user": user,
        "cycle": cycle,
        "asset": asset,
        "site": site,
        "cycle_url": site + reverse("fund:cycle", args=[cycle.id]),
        "settings_url": site + reverse("fund:my-settings"),
        "lines": [
            {
                "contract": p.contract.symbol,
                "position_id": p.position_id,
                "profit": asset.format(p.profit_units),
                "amount": asset.format(p.apportionment.amount_units),
                "url": f"{statements}{p.apportionment.statement_id}/",
            }
            for p in positions
        ],
        "total": asset.format(sum(p.apportionment.amount_units for p in positions)),
    }
    subject = (
        f"{asset.code} insurance fund: cycle #{cycle.id} apportioned "
        f"{context['total']} {asset.code} from your profit"
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("emails/apportionment.txt", context),
        to=[user.email],
    )
    message.attach_alternative(render_to_string("emails/apportionment.html", context), "text/html")
    return message
