"""Site-wide views: the login that sends each person where they belong, and the logout that
says it worked."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.urls import reverse


def home_of(user) -> str:
    """Where a person lands after logging in: a trader at their statements, settlement staff at
    the console, other staff at Django's admin, anyone else at the funds."""
    if getattr(user, "trader_account", None) is not None:
        return reverse("fund:my-statements")
    if user.is_staff and user.is_active and user.has_perm("fund.settle_cycles"):
        return reverse("ops:index")
    if user.is_staff:
        return reverse("admin:index")
    return reverse("fund:overview")


class LoginView(auth_views.LoginView):
    """Django's login; a safe `next` wins, as in Django, and without one each person goes to
    their own home (never to a page they may not open)."""

    redirect_authenticated_user = True

    def get_default_redirect_url(self):
        return home_of(self.request.user)


class LogoutView(auth_views.LogoutView):
    """Django's logout (POST only), then a word that it worked on the page it lands on."""

    def post(self, request, *args, **kwargs):
        was_logged_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_logged_in:
            messages.success(request, "You are logged out. Log in again any time.")
        return response
