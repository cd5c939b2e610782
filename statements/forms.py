"""The login and password change forms, with the lockout's refusals in words
(statements/lockout.py counts and refuses; these forms only say why)."""

import hashlib
import logging

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, PasswordResetForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from config.celery import dispatch
from statements.lockout import LoginRefused, login_attempt
from statements.tasks import send_account_email

logger = logging.getLogger(__name__)

REFUSAL_MESSAGES = {
    "locked": "Too many failed logins. Try again in %(wait)s.",
    "unavailable": "Signing in is unavailable for a moment. Try again in a minute.",
}


def _wait(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def refusal_error(refusal: LoginRefused) -> ValidationError:
    return ValidationError(
        REFUSAL_MESSAGES[refusal.reason],
        code=refusal.reason,
        params={"wait": _wait(refusal.retry_after)},
    )


class LockoutMessageMixin:
    """For an AuthenticationForm: when the backend refused the attempt without checking the
    password, say so instead of "wrong password"."""

    def get_invalid_login_error(self):
        refusal = getattr(self.request, "login_refusal", None)
        if refusal is not None:
            return refusal_error(refusal)
        return super().get_invalid_login_error()


class ThrottledAuthenticationForm(LockoutMessageMixin, AuthenticationForm):
    """/accounts/login/."""


class ThrottledAdminAuthenticationForm(LockoutMessageMixin, AdminAuthenticationForm):
    """/admin/login/: the same budgets as /accounts/login/."""


class LockoutOldPasswordMixin:
    """For a PasswordChangeForm: the old password is a password check like a login's, against
    the same account budget (the form has no request, so no address budget)."""

    def clean_old_password(self):
        check = super().clean_old_password

        def verify():
            try:
                return check()
            except ValidationError as wrong:
                verify.wrong = wrong
                return None

        verify.wrong = None
        try:
            old_password = login_attempt(None, self.user.get_username(), verify)
        except LoginRefused as refusal:
            raise refusal_error(refusal) from None
        if verify.wrong is not None:
            raise verify.wrong
        return old_password


class ThrottledPasswordChangeForm(LockoutOldPasswordMixin, PasswordChangeForm):
    """/accounts/password/."""


class ThrottledAdminPasswordChangeForm(LockoutOldPasswordMixin, AdminPasswordChangeForm):
    """/admin/password_change/."""


class ThrottledPasswordResetForm(PasswordResetForm):
    """Django's reset form (it answers the same whether or not the address is known), with the
    email sent by Celery off the request (the answer takes as long either way), and at most
    PASSWORD_RESET_PER_HOUR emails to one address in an hour, so that the form cannot flood a
    mailbox. Without the cache to count in, nothing is sent (and the answer is the same)."""

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email,
                  html_email_template_name=None):  # fmt: skip
        key = "password-reset:" + hashlib.sha256(to_email.lower().encode()).hexdigest()
        try:
            cache.add(key, 0, timeout=3600)
            sent = cache.incr(key)
        except ValueError:  # expired between add and incr
            sent = 1
        except Exception:
            logger.exception("password reset for an address not sent: the cache is unreachable")
            return
        if sent > settings.PASSWORD_RESET_PER_HOUR:
            return
        subject = "".join(render_to_string(subject_template_name, context).splitlines())
        body = render_to_string(email_template_name, context)
        html = (
            render_to_string(html_email_template_name, context) if html_email_template_name
            else None
        )  # fmt: skip
        try:
            dispatch(send_account_email, subject, body, html, to_email)
        except Exception:
            logger.exception("password reset for an address not sent: the broker is unreachable")
