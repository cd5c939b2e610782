"""Telling traders (fund/services/notices.py): one email per apportioned trader per settled cycle,
with their positions and amounts, text and HTML, the opt-out respected; the header's unread badge
and the notifications page; the account page; password reset by email."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from fund.models import Apportionment, CycleEmail, FanOutCursor
from fund.services import notices
from fund.tasks import fan_out_events, send_cycle_emails
from statements.models import Profile, Statement
from tests.factories import UserFactory
from tests.helpers import at, book_loss, report_profits

Email = CycleEmail.Status


@pytest.fixture
def addressed(world):
    for user, address in ((world.trader, "alice@example.com"), (world.other, "bob@example.com")):
        user.email = address
        user.save()
    return world


def amounts_of(user, cycle) -> list[str]:
    asset = cycle.fund.asset
    return [
        asset.format(a.amount_units)
        for a in Apportionment.objects.filter(cycle=cycle, statement__account__user=user)
    ]


def test_one_email_per_apportioned_trader_per_cycle_with_the_right_amounts(addressed):
    world = addressed
    mail.outbox.clear()
    fan_out_events()
    participants = Apportionment.objects.filter(cycle=world.cycle).count()
    assert participants >= 2
    by_address = {m.to[0]: m for m in mail.outbox}
    assert sorted(by_address) == ["alice@example.com", "bob@example.com"]
    assert len(mail.outbox) == 2
    for user in (world.trader, world.other):
        message = by_address[user.email]
        html = message.alternatives[0].content
        assert message.alternatives[0].mimetype == "text/html"
        for amount in amounts_of(user, world.cycle):
            assert amount in message.body and amount in html
            assert amount in message.subject
        statement = Statement.objects.get(account__user=user, type="apportionment")
        assert f"/me/statements/{statement.id}/" in message.body
        assert "/me/settings/" in message.body
    assert "600" in by_address["alice@example.com"].body  # alice's profit, not bob's
    assert "300" not in by_address["alice@example.com"].body
    # Sent once: the next runs (the beat's sweep, a repeated task) send nothing more.
    fan_out_events()
    send_cycle_emails(world.cycle.id)
    assert len(mail.outbox) == 2
    assert set(CycleEmail.objects.values_list("status", flat=True)) == {Email.SENT}


def test_the_opt_out_and_a_login_without_an_address_get_no_email(addressed):
    world = addressed
    Profile.objects.create(user=world.other, email_apportionments=False)
    world.trader.email = ""
    world.trader.save()
    mail.outbox.clear()
    fan_out_events()
    assert mail.outbox == []
    assert set(CycleEmail.objects.values_list("status", flat=True)) == {Email.SKIPPED}


def test_emails_go_in_batches_and_a_worker_killed_mid_batch_loses_none(
    usdt_fund, linear, monkeypatch, settings
):
    settings.EMAIL_BATCH = 3
    book_loss(linear, "500", at(0, 10))
    from fund.models import SettlementCycle
    from fund.services.cycles import cycles_close_due
    from fund.services.settlement import settlement_cycle_settle
    from statements.models import TraderAccount

    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(cycle, linear, {i: str(100 + i) for i in range(1, 11)})
    for account in TraderAccount.objects.all():
        account.user = UserFactory(email=f"{account.external_id}@example.com")
        account.save()
    from tests.helpers import deposit

    deposit(usdt_fund, "1000")
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    participants = Apportionment.objects.filter(cycle=cycle).count()
    notices.cycle_emails_fan_out()
    assert CycleEmail.objects.filter(cycle=cycle).count() == participants
    mail.outbox.clear()
    real = notices._messages

    def die_after_sending(*args):
        built = real(*args)
        from django.core.mail import mailers

        with mailers.default as connection:
            connection.send_messages([message for _, message in built[0]])
        raise SystemExit("killed after sending, before marking sent")

    monkeypatch.setattr(notices, "_messages", die_after_sending)
    with pytest.raises(SystemExit):
        notices.cycle_emails_send(cycle_id=cycle.id)
    monkeypatch.undo()
    assert len(mail.outbox) == 3  # one batch went out, but was not marked
    assert notices.cycle_emails_send(cycle_id=cycle.id).sent == 3  # the other batches first
    CycleEmail.objects.filter(status=Email.PENDING).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    send_cycle_emails(cycle.id)
    assert set(CycleEmail.objects.values_list("status", flat=True)) == {Email.SENT}
    received = sorted(m.to[0] for m in mail.outbox)
    assert len(set(received)) == participants  # every trader has theirs: nothing lost
    assert len(received) == participants + 3  # the killed batch went twice: at least once


def test_a_fan_out_killed_half_way_writes_nothing_and_the_next_run_writes_it_all(
    addressed, monkeypatch
):
    def die(cycle_id):
        raise SystemExit("killed while writing the cycle's emails")

    monkeypatch.setattr(notices, "_emails_write", die)
    with pytest.raises(SystemExit):
        notices.cycle_emails_fan_out()
    monkeypatch.undo()
    assert not CycleEmail.objects.exists()
    assert not FanOutCursor.objects.filter(last__gt=0).exists()
    assert notices.cycle_emails_fan_out() == [addressed.cycle.id]
    assert CycleEmail.objects.count() == 2
    assert notices.cycle_emails_fan_out() == []


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_header_counts_unread_notices_and_the_page_marks_them_read(world):
    alice = login(world.trader)
    page = alice.get("/me/statements/").content.decode()
    assert re.search(r'class="badge"\s+aria-label="1 unread">1<', page)
    notices_page = alice.get("/me/notifications/")
    assert notices_page.status_code == 200
    body = notices_page.content.decode()
    statement = Statement.objects.get(account__user=world.trader)
    assert f"/me/statements/{statement.id}/" in body and "New" in body
    assert world.cycle.fund.asset.format(statement.apportionment.amount_units) in body
    assert notices_page["Cache-Control"] == "private, no-store"
    after = alice.get("/me/statements/").content.decode()
    assert 'class="badge"' not in after
    assert "New" not in alice.get("/me/notifications/").content.decode()


def test_the_notifications_page_needs_a_trading_account(world, ops):
    assert Client().get("/me/notifications/").status_code == 302
    assert login(ops).get("/me/notifications/").status_code == 403


def test_the_account_page_saves_the_opt_out(world):
    alice = login(world.trader)
    page = alice.get("/me/settings/")
    assert page.status_code == 200 and "acct-1" in page.content.decode()
    answer = alice.post("/me/settings/", {})  # the box unticked
    assert answer.status_code == 302
    assert Profile.objects.get(user=world.trader).email_apportionments is False
    alice.post("/me/settings/", {"email_apportionments": "on"})
    assert Profile.objects.get(user=world.trader).email_apportionments is True
    assert Client().post("/me/settings/", {}).status_code == 302  # to the login


def test_password_reset_by_email(world, settings):
    world.trader.email = "alice@example.com"
    world.trader.save()
    mail.outbox.clear()
    anonymous = Client()
    assert "Forgot your password?" in anonymous.get("/accounts/login/").content.decode()
    answer = anonymous.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert answer.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    assert mail.outbox[0].alternatives[0].mimetype == "text/html"
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mail.outbox[0].body)
    form = anonymous.get(link.group(1), follow=True)
    assert "Choose a new password" in form.content.decode()
    done = anonymous.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a new long passphrase 7", "new_password2": "a new long passphrase 7"},
    )
    assert done.status_code == 302
    assert Client().login(username="alice", password="a new long passphrase 7")
    # The link works once.
    again = anonymous.get(link.group(1), follow=True)
    assert "does not work any more" in again.content.decode()


def test_password_reset_says_the_same_for_unknown_addresses_and_caps_the_emails(world):
    world.trader.email = "alice@example.com"
    world.trader.save()
    mail.outbox.clear()
    anonymous = Client()
    unknown = anonymous.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert unknown.status_code == 302 and mail.outbox == []
    for _ in range(6):
        anonymous.post("/accounts/password/reset/", {"email": "ALICE@example.com"})
    assert len(mail.outbox) == 3  # PASSWORD_RESET_PER_HOUR: no flooding of a mailbox
    bad = anonymous.post("/accounts/password/reset/", {"email": "x\x00@example.com"})
    assert bad.status_code in (200, 400) and len(mail.outbox) == 3


class RefusingBackend:
    """A mail server that refuses one address and takes the others (Django's test outbox)."""

    def __init__(self, **kwargs):
        from django.core.mail.backends.locmem import EmailBackend

        self.inner = EmailBackend(**kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send_messages(self, messages):
        import smtplib

        for message in messages:
            if "refused@" in message.to[0]:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"no such user")})
        return self.inner.send_messages(messages)


def test_a_refused_address_is_given_up_and_the_others_are_sent(addressed, settings):
    world = addressed
    world.trader.email = "refused@example.com"
    world.trader.save()
    settings.MAILERS = {"default": {"BACKEND": "tests.fund.test_notices.RefusingBackend"}}
    mail.outbox.clear()
    fan_out_events()
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    statuses = dict(CycleEmail.objects.values_list("account__user__username", "status"))
    assert statuses == {"alice": Email.FAILED, "bob": Email.SENT}
    fan_out_events()  # the sweep again: the refused one is not tried again
    assert len(mail.outbox) == 1


def test_a_server_that_is_down_ends_the_batch_and_an_email_is_given_up_after_its_attempts(
    addressed, settings
):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 9, "timeout": 1},  # nothing listens
        }
    }
    notices.cycle_emails_fan_out()
    cycle_id = addressed.cycle.id
    for _ in range(settings.EMAIL_MAX_ATTEMPTS):
        with pytest.raises(OSError):
            notices.cycle_emails_send(cycle_id=cycle_id)
        assert set(CycleEmail.objects.values_list("status", flat=True)) == {Email.PENDING}
        assert not CycleEmail.objects.filter(leased_until__isnull=False).exists()  # let go
    assert notices.cycle_emails_send(cycle_id=cycle_id).more is False
    assert set(CycleEmail.objects.values_list("status", flat=True)) == {Email.FAILED}


def test_an_upgraded_database_does_not_mail_the_cycles_settled_before(world):
    """Migration 0017 starts the emails' cursor at the newest event: the cycles settled before
    it are not mailed."""
    import importlib

    from django.apps import apps

    from fund.models import Event

    FanOutCursor.objects.all().delete()
    migration = importlib.import_module("fund.migrations.0017_webhooks_and_emails")
    migration.emails_from_now(apps, None)
    assert FanOutCursor.objects.get(name="emails").last == Event.objects.order_by("-seq")[0].seq
    assert notices.cycle_emails_fan_out() == []
