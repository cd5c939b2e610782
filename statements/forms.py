"""The login and password change forms, with the lockout's refusals in words
(statements/lockout.py counts and refuses; these forms only say why)."""

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, PasswordResetForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

from statements.lockout import LoginRefused, login_attempt

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
    """Django's reset form (it says the same whether or not the address is known), sending at
    most PASSWORD_RESET_PER_HOUR emails to one address in an hour, so that the form cannot be
    used to flood someone's mailbox."""

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email,
                  html_email_template_name=None):  # fmt: skip
        key = "password-reset:" + hashlib.sha256(to_email.lower().encode()).hexdigest()
        cache.add(key, 0, timeout=3600)
        try:
            sent = cache.incr(key)
        except ValueError:  # expired between add and incr
            sent = 1
        if sent > settings.PASSWORD_RESET_PER_HOUR:
            return
        super().send_mail(subject_template_name, email_template_name, context, from_email,
                          to_email, html_email_template_name)  # fmt: skip
