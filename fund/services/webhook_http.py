"""One webhook POST, and the checks that keep it from being turned against our own network.

A target must be http(s) on a host whose every address is a public one (not private, loopback,
link-local, shared, reserved or multicast), unless WEBHOOK_ALLOW_PRIVATE is on (the tests and
the demo deliver to 127.0.0.1). The request connects to the very address that was checked, so a
name that resolves to a public address when checked and a private one when connecting (DNS
rebinding) gains nothing. Redirects are never followed (a 3xx is a failed attempt), the whole
exchange ends after WEBHOOK_TIMEOUT_SECONDS, and at most 64 KiB of an answer is read. The lookup of
the host's addresses is the system resolver's, with its own timeouts.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

MAX_ANSWER_BYTES = 64 * 1024


class TargetRefused(Exception):
    """The URL may not be posted to: the reason, in words."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, not HTTP)
    latency_ms: int
    error: str = ""


def target_parse(url: str) -> Target:
    """The URL's parts, or TargetRefused saying what is wrong with it."""
    if not isinstance(url, str) or len(url) > 500:
        raise TargetRefused("Give the URL as text of at most 500 characters.")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused("A URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"Not a URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("The URL must start with https:// (or http://).")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("A URL with a user name or password is refused: use the secret.")
    host = parts.hostname or ""
    if not host:
        raise TargetRefused("The URL has no host.")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        raise TargetRefused("Write the host in ASCII (its xn-- form).") from None
    if parts.fragment:
        raise TargetRefused("A webhook URL has no #fragment.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


# IANA's special-purpose registries, written out (older Pythons' is_global misses some): no
# webhook goes to these. IPv6 must be global unicast (2000::/3), less the ranges that embed or
# tunnel to an IPv4 address (6to4, Teredo) or are not routed; IPv4-mapped, -compatible and
# NAT64 forms lie outside 2000::/3, so they are refused with the rest.
_IPV4_SPECIAL = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24",
        "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
]  # fmt: skip
_IPV6_GLOBAL = ipaddress.ip_network("2000::/3")
_IPV6_SPECIAL = [
    ipaddress.ip_network(n)
    for n in ("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "2001:2::/48")
]


def address_allowed(address: str) -> bool:
    """Whether a webhook may go to this address: a public unicast one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not any(ip in net for net in _IPV4_SPECIAL)
    return ip in _IPV6_GLOBAL and ip.is_global and not any(ip in net for net in _IPV6_SPECIAL)


def target_addresses(target: Target) -> list[str]:
    """The host's addresses, every one checked; TargetRefused when it has none or any is not
    public (a name with one private address among public ones is refused: it could be given
    either way)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"The host {target.host} cannot be resolved ({exc}).") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise TargetRefused(f"The host {target.host} has no address.")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not address_allowed(address):
                raise TargetRefused(
                    f"{target.host} resolves to {address}, a private, loopback or reserved "
                    "address: webhooks go to public addresses only."
                )
    return addresses


def url_check(url: str, *, resolve: bool = True) -> None:
    """For forms and the admin API: a ValidationError on `url` when the URL is refused."""
    try:
        target = target_parse(url)
        if resolve:
            target_addresses(target)
    except TargetRefused as exc:
        raise ValidationError({"url": str(exc)}) from None


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one checked address, with the certificate checked against the URL's host."""

    def __init__(self, address: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POSTs the body; the answer's status (None when there was none) and how long it took."""
    started = time.monotonic()

    def answer(status, error=""):
        return Answer(status, int((time.monotonic() - started) * 1000), error[:300])

    try:
        target = target_parse(url)
        addresses = target_addresses(target)
    except TargetRefused as exc:
        return answer(None, f"refused: {exc}")
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    connection = kind(addresses[0], target.host, target.port, timeout)
    # The whole exchange, not only each socket operation, ends after the timeout: a receiver
    # that drips its answer has its socket shut at the deadline.
    cut = threading.Event()
    watchdog = threading.Timer(timeout, _shut, [connection, cut])
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Content-Type": "application/json", "Connection": "close"},
        )
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
        if cut.is_set():  # shut at the deadline while the answer was being read
            return answer(None, f"timed out: no whole answer within {timeout:g} s")
        return answer(response.status)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if cut.is_set():
            return answer(None, f"timed out: no whole answer within {timeout:g} s")
        return answer(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    finally:
        watchdog.cancel()
        connection.close()


def _shut(connection, cut: threading.Event) -> None:
    cut.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
