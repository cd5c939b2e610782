from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control

from config.views import LoginView, LogoutView
from fund import demo_wallet
from statements.forms import (
    ThrottledAdminAuthenticationForm,
    ThrottledAdminPasswordChangeForm,
    ThrottledAuthenticationForm,
    ThrottledPasswordChangeForm,
    ThrottledPasswordResetForm,
)

# Django's admin logs in and changes passwords through its own forms: the same lockout's
# (statements/lockout.py: the backend counts every login; these forms give its refusals words).
admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.password_change_form = ThrottledAdminPasswordChangeForm


def healthz(request):
    """For load balancers (and the benchmarks' trivial view): the process answers."""
    return HttpResponse("ok", content_type="text/plain")


private = cache_control(private=True, no_store=True)

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path(
        "accounts/login/",
        LoginView.as_view(authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    # The login and logout pages are never_cache already (Django's views); these are a
    # logged-in user's own pages as well.
    path(
        "accounts/password/",
        private(auth_views.PasswordChangeView.as_view(form_class=ThrottledPasswordChangeForm)),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        private(auth_views.PasswordChangeDoneView.as_view()),
        name="password_change_done",
    ),
    # Password reset by email: Django's views (a link valid PASSWORD_RESET_TIMEOUT, three days).
    path(
        "accounts/password/reset/",
        auth_views.PasswordResetView.as_view(
            form_class=ThrottledPasswordResetForm,
            email_template_name="registration/password_reset_email.txt",
            # The link names the portal as SITE_URL says, never as a request's Host header does.
            extra_email_context={
                "domain": urlsplit(settings.SITE_URL).netloc,
                "protocol": urlsplit(settings.SITE_URL).scheme,
            },
            html_email_template_name="registration/password_reset_email.html",
        ),
        name="password_reset",
    ),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    # The demo's simulated exchange wallet (fund/demo_wallet.py): 404 unless `make demo` set it up.
    path("demo/wallet/webhook", demo_wallet.webhook, name="demo-wallet-webhook"),
    path("admin/", admin.site.urls),
    path("ops/", include("fund.ops_urls")),
    path("api/", include("fund.api.urls")),
    path("", include("fund.urls")),
]
