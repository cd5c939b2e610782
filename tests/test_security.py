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
