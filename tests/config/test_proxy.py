"""The client's address: a client's own X-Forwarded-For is ignored; behind the proxy the README
shows (DJANGO_BEHIND_PROXY), the address the proxy forwards is the one the login lockout, the
throttles and the audit trail see."""

import pytest
from django.test import RequestFactory, override_settings

from config.middleware import ForwardedForMiddleware


def address_seen(**headers) -> str:
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", **headers)
    return ForwardedForMiddleware(lambda r: r.META["REMOTE_ADDR"])(request)


@override_settings(BEHIND_PROXY=False)
def test_it_ignores_a_clients_own_forwarded_for_without_a_proxy():
    assert address_seen(HTTP_X_FORWARDED_FOR="203.0.113.9") == "127.0.0.1"


@override_settings(BEHIND_PROXY=True)
@pytest.mark.parametrize(
    "header, seen",
    [
        ("198.51.100.7", "198.51.100.7"),
        ("203.0.113.9, 198.51.100.7", "198.51.100.7"),
        ("", "127.0.0.1"),
    ],
)
def test_it_takes_the_address_the_proxy_wrote_last(header, seen):
    assert address_seen(HTTP_X_FORWARDED_FOR=header) == seen


@pytest.mark.django_db
def test_the_anonymous_throttle_keys_on_the_address_not_on_a_clients_header(client, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import AnonRateThrottle

    cache.clear()
    monkeypatch.setitem(AnonRateThrottle.THROTTLE_RATES, "anon", "3/minute")
    codes = [
        client.get("/api/v1/funds", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code
        for i in range(5)
    ]
    cache.clear()
    assert codes == [200, 200, 200, 429, 429]
