"""Production settings pass Django's deployment checks; every page carries the
Content-Security-Policy, which allows no inline script."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_it_passes_the_deployment_checks_with_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_SECURE": "true",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_REQUIRE_SECRET_KEY": "true",
        "DJANGO_ALLOWED_HOSTS": "fund.example.com",
        "DJANGO_MANIFEST_STATIC": "true",
        "DJANGO_DEBUG": "false",
        "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests' live server only
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_it_refuses_to_start_in_production_without_a_secret_key():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_REQUIRE_SECRET_KEY": "true",
        "DJANGO_SECRET_KEY": "",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "DJANGO_SECRET_KEY must be set" in done.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/rules/", "/api/docs/", "/accounts/login/"])
def test_it_sends_a_content_security_policy_without_inline_scripts(client, path):
    response = client.get(path)
    policy = response["Content-Security-Policy"]
    assert (
        "script-src 'self'" in policy
        and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in policy and response["X-Frame-Options"] == "DENY"
    assert b"<script>" not in response.content  # every script is a file


@pytest.mark.django_db
def test_it_never_logs_the_engines_credential(caplog, usdt_fund, linear):
    """A token, accepted or refused, appears in no log line, at any level."""
    import logging

    from rest_framework.test import APIClient

    from statements.models import ApiToken
    from statements.services import api_token_create
    from tests.factories import UserFactory

    _, token = api_token_create(user=UserFactory(), kind=ApiToken.Kind.ENGINE, name="engine")
    caplog.set_level(logging.DEBUG)
    engine = APIClient()
    engine.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (
        engine.post("/api/v1/ingest/liquidations", {"items": []}, format="json").status_code == 400
    )
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {token}x")
    assert forged.get("/api/v1/funds").status_code == 401
    assert token not in caplog.text and token[:12] not in caplog.text


@pytest.mark.django_db
def test_an_admin_sets_up_a_fund_for_a_new_asset_but_cannot_edit_its_books(admin_client):
    from fund.models import Fund
    from tests.factories import AssetFactory

    asset = AssetFactory(code="SOL", name="Solana", precision=9)
    answer = admin_client.post(
        "/admin/fund/fund/add/",
        {"asset": asset.id, "anchor_0": "2026-12-02", "anchor_1": "00:00:00",
         "cycle_seconds": "86400", "grace_seconds": "300", "fund_ratio": "0.2",
         "screening_ratio": "0.9"},
    )  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    fund = Fund.objects.get(asset=asset)
    assert fund.balance_units == 0 and fund.cycle_seconds == 86400
    assert admin_client.get(f"/admin/fund/fund/{fund.id}/change/").status_code in (200, 403)
    edited = admin_client.post(
        f"/admin/fund/fund/{fund.id}/change/", {"asset": asset.id, "cycle_seconds": "60"}
    )
    fund.refresh_from_db()
    assert edited.status_code == 403 and fund.cycle_seconds == 86400
