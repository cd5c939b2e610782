"""Password guessing (statements/lockout.py): every password check takes a slot from the client
address's budget and the account's before the password is looked at, atomically, so that no
login form and no burst of parallel attempts gets more than the budget's worth of guesses; one
address cannot lock every account. The last tests fire 100 parallel attempts at a real gunicorn
(4 workers × 25 threads) on PostgreSQL and Redis."""

import http.client
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher, make_password
from django.db import DatabaseError
from django.test import Client, override_settings

from bench.webserver import gunicorn_command
from statements import lockout
from statements.lockout import account_key, address_key
from statements.models import LoginBudget
from tests.factories import UserFactory
from tests.workers import ROOT, database_url_of_test_database

PASSWORD = "a-good-password-1"
WRONG_LOGIN = b"Please enter a correct username and password"
WRONG_ADMIN = b"Please enter the correct username and password for a staff account"
LOCKED = b"Too many failed logins"


def login(path, username, password, address="198.51.100.1", client=None):
    client = client or Client()
    response = client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)
    return client, response


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def counted_checks(monkeypatch):
    """How many times a password was actually compared with its stored hash."""
    checks = []
    verify = MD5PasswordHasher.verify

    def counting(self, password, encoded):
        checks.append(password)
        return verify(self, password, encoded)

    monkeypatch.setattr(MD5PasswordHasher, "verify", counting)
    return checks


@pytest.mark.django_db
def test_the_admin_login_locks_out_after_the_budget_and_checks_no_password_then(counted_checks):
    UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    for n in range(5):
        _, response = login("/admin/login/", "root", f"guess-{n}")
        assert WRONG_ADMIN in response.content
    client, response = login("/admin/login/", "root", PASSWORD)
    assert response.status_code == 200 and LOCKED in response.content
    assert not logged_in(client)
    assert len(counted_checks) == 5  # the right password was never compared


@pytest.mark.django_db
@pytest.mark.parametrize(
    "guessed_at, then_at",
    [("/accounts/login/", "/admin/login/"), ("/admin/login/", "/accounts/login/")],
)
def test_an_account_locked_on_one_login_page_is_locked_on_the_other(guessed_at, then_at):
    UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    for n in range(5):
        login(guessed_at, "root", f"guess-{n}")
    client, response = login(then_at, "root", PASSWORD, address="192.0.2.99")
    assert LOCKED in response.content and not logged_in(client)


@pytest.mark.django_db
def test_one_address_locks_at_most_its_budget_of_accounts_and_none_for_another_address():
    for name in ["victim1", "victim2", "victim3", "victim4", "victim5", "bystander"]:
        UserFactory(username=name, password=PASSWORD)
    attacker, other = "203.0.113.7", "192.0.2.10"
    # Five guesses lock an account for everyone, whichever address they came from …
    for n in range(5):
        login("/accounts/login/", "victim1", f"guess-{n}", address=attacker)
    client, response = login("/accounts/login/", "victim1", PASSWORD, address=other)
    assert LOCKED in response.content and not logged_in(client)
    # … but the attacker's address has 20 failures per window over all accounts: four accounts.
    for victim in ["victim2", "victim3", "victim4"]:
        for n in range(5):
            _, response = login("/accounts/login/", victim, f"guess-{n}", address=attacker)
            assert WRONG_LOGIN in response.content
    for n in range(10):  # refused before any account is tried, so none of these counts
        _, response = login("/accounts/login/", "victim5", f"guess-{n}", address=attacker)
        assert LOCKED in response.content
    client, response = login("/accounts/login/", "victim5", PASSWORD, address=attacker)
    assert LOCKED in response.content and not logged_in(client)  # the address is refused …
    for victim in ["victim5", "bystander"]:  # … and the accounts it did not use up stay open
        client, response = login("/accounts/login/", victim, PASSWORD, address=other)
        assert response.status_code == 302 and logged_in(client), victim
    # Another address of the attacker's IPv6 /64 shares its budget; another /64 does not.
    assert address_key(type("R", (), {"META": {"REMOTE_ADDR": "2001:db8:1:2::1"}})) == (
        address_key(type("R", (), {"META": {"REMOTE_ADDR": "2001:db8:1:2:ffff::9"}}))
    )
    assert address_key(type("R", (), {"META": {"REMOTE_ADDR": "2001:db8:1:3::1"}})) != (
        address_key(type("R", (), {"META": {"REMOTE_ADDR": "2001:db8:1:2::1"}}))
    )


@pytest.mark.django_db
def test_right_passwords_and_refusals_give_their_slots_back():
    UserFactory(username="dana", password=PASSWORD)
    for _ in range(30):  # more than the address's and the account's budgets
        client, response = login("/accounts/login/", "dana", PASSWORD)
        assert response.status_code == 302
    for n in range(4):
        login("/accounts/login/", "dana", f"guess-{n}")
    assert LoginBudget.objects.get(key=account_key("dana")).used == 4
    client, response = login("/accounts/login/", "dana", PASSWORD)
    assert response.status_code == 302
    assert LoginBudget.objects.get(key=account_key("DANA")).used == 4  # failures stand


@pytest.mark.django_db
def test_the_lock_ends_with_its_window(monkeypatch):
    UserFactory(username="erin", password=PASSWORD)
    for n in range(5):
        login("/accounts/login/", "erin", f"guess-{n}")
    _, response = login("/accounts/login/", "erin", PASSWORD)
    assert b"Try again in 15 minutes" in response.content
    later = time.time() + 15 * 60
    monkeypatch.setattr(lockout, "_now", lambda: later)
    client, response = login("/accounts/login/", "erin", PASSWORD)
    assert response.status_code == 302 and logged_in(client)


@pytest.mark.django_db
@override_settings(LOGIN_ACCOUNT_FAILURES=2, LOGIN_ADDRESS_FAILURES=3, LOGIN_LOCKOUT_SECONDS=60)
def test_it_takes_its_numbers_from_the_settings():
    UserFactory(username="finn", password=PASSWORD)
    UserFactory(username="gus", password=PASSWORD)
    for n in range(2):
        login("/accounts/login/", "finn", f"guess-{n}")
    _, response = login("/accounts/login/", "finn", PASSWORD, address="192.0.2.1")
    assert b"Try again in 1 minute." in response.content
    login("/accounts/login/", "gus", "guess")
    _, response = login("/accounts/login/", "gus", PASSWORD)
    assert LOCKED in response.content  # the address's three failures are used up


@pytest.mark.django_db
def test_it_refuses_and_checks_no_password_when_the_budgets_cannot_be_taken(
    monkeypatch, counted_checks
):
    UserFactory(username="hal", password=PASSWORD)

    def failing(*args):
        raise DatabaseError("the budgets' table is unreachable")

    monkeypatch.setattr(lockout, "_reserve", failing)
    for path in ["/accounts/login/", "/admin/login/"]:
        client, response = login(path, "hal", PASSWORD)
        assert b"Signing in is unavailable for a moment" in response.content
        assert not logged_in(client)
    assert counted_checks == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/password/", "/admin/password_change/"])
def test_the_old_password_of_a_password_change_counts_against_the_account(counted_checks, path):
    user = UserFactory(username="ivy", password=PASSWORD, is_staff=True)
    client = Client()
    client.force_login(user)
    form = {"new_password1": "another-pass-2026", "new_password2": "another-pass-2026"}
    for n in range(5):
        response = client.post(path, {"old_password": f"guess-{n}", **form})
        assert b"Your old password was entered incorrectly" in response.content
    response = client.post(path, {"old_password": PASSWORD, **form})
    assert LOCKED in response.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # unchanged
    _, response = login("/accounts/login/", "ivy", PASSWORD)
    assert LOCKED in response.content
    assert len(counted_checks) == 6  # five guesses and the check just above, nothing more


# 100 parallel attempts at a real gunicorn: 4 workers × 25 threads, PostgreSQL and Redis.

WORKERS, THREADS, ATTEMPTS = 4, 25, 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        gunicorn_command(
            port,
            WORKERS,
            "--threads",
            str(THREADS),
            "--worker-class",
            "gthread",
            "--timeout",
            "120",
        ),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "XDG_RUNTIME_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": database_url_of_test_database("login-lockout-test"),
            "DJANGO_CONN_MAX_AGE": "0",  # 100 threads must not each keep a connection open
            "DJANGO_LOG_LEVEL": "WARNING",
        },
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read(), answer.getheader("Set-Cookie") or ""
    finally:
        connection.close()


def burst(port, path, username, passwords):
    """The login form fetched once (its CSRF cookie and token reused), then one POST per
    password, all released at once; each answer classified."""
    status, page, cookie = request(port, "GET", path)
    assert status == 200
    csrf_cookie = re.search(r"csrftoken=([^;]+)", cookie).group(1)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    start = threading.Barrier(len(passwords))

    def attempt(password):
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password}
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            "Referer": f"http://127.0.0.1:{port}{path}",
        }
        start.wait()
        status, content, set_cookie = request(port, "POST", path, body, headers)
        if status == 302 and "sessionid=" in set_cookie:
            return "in"
        if status == 200 and (WRONG_LOGIN in content or WRONG_ADMIN in content):
            return "wrong"
        if status == 200 and LOCKED in content:
            return "locked"
        return f"{status}: {content[:300]!r}"

    with ThreadPoolExecutor(len(passwords)) as pool:
        return list(pool.map(attempt, passwords))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_100_parallel_attempts_on_gunicorn_check_at_most_the_budget_of_passwords(server, path):
    # The server keeps Django's default hasher (PBKDF2), as production does.
    user = UserFactory(username="target", is_staff=True, is_superuser=True)
    user.password = make_password(PASSWORD, hasher=PBKDF2PasswordHasher())
    user.save(update_fields=["password"])
    passwords = [f"guess-{n}" for n in range(ATTEMPTS)]
    passwords[ATTEMPTS // 2] = PASSWORD  # the right one inside the burst
    answers = burst(server, path, "target", passwords)
    counts = {kind: answers.count(kind) for kind in ("in", "wrong", "locked")}
    assert sum(counts.values()) == ATTEMPTS, [a for a in answers if a not in counts]
    checked = counts["wrong"] + counts["in"]
    print(f"{path}: {checked} of {ATTEMPTS} passwords checked ({counts})")
    assert counts["wrong"] <= 5 and counts["in"] <= 1  # at most the budget of wrong guesses
    assert LoginBudget.objects.get(key=account_key("target")).used == counts["wrong"]
    if counts["in"] == 0:
        # The right password came after the budget: refused in the burst, and refused now.
        assert counts["wrong"] == 5
        assert burst(server, path, "target", [PASSWORD]) == ["locked"]
    # (Otherwise it was among the first five checked: a guess within the budget that was right.)
