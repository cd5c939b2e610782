"""Bounded work per intake request: the body's size is checked before it is read or parsed, the
item count before any item is looked at, and an answer lists at most MAX_ITEM_ERRORS items'
errors (with how many more), however many items are wrong."""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from bench.webserver import gunicorn_command
from fund.models import FundRecord, LiquidationTakeover
from fund.services.liquidations import MAX_BATCH, MAX_ITEM_ERRORS
from statements.models import ApiToken
from statements.services import api_token_create
from tests.factories import UserFactory
from tests.helpers import takeover_item
from tests.workers import ROOT, database_url_of_test_database

URL = "/api/v1/ingest/liquidations"


def send(engine, body: bytes, **extra):
    return engine.generic("POST", URL, body, content_type="application/json", **extra)


def listed_items(answer: dict) -> set[str]:
    return {key.split("]")[0] for key in answer if key.startswith("items[")}


@pytest.mark.django_db
def test_200000_empty_items_are_refused_by_their_count_alone(engine, linear, recent):
    body = json.dumps({"items": [{}] * 200_000}).encode()
    answer = send(engine, body)
    assert answer.status_code == 400 and len(answer.content) < 500
    assert answer.json() == {
        "items": [f"A batch carries at most {MAX_BATCH:,} items; this one has 200,000."]
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "wrong",
    [
        lambda i: {"external_id": f"x-{i}"},  # fields missing: the forgiving reader names them
        lambda i: takeover_item(f"x-{i}", quantity="0"),  # typed, refused by the service
        lambda i: takeover_item(f"x-{i}", contract="NOPE", quantity=7),  # both
    ],
    ids=["missing-fields", "service-errors", "mixed"],
)
def test_a_batch_of_wrong_items_names_the_first_hundred_and_counts_the_rest(
    engine, linear, recent, wrong
):
    answer = send(engine, json.dumps({"items": [wrong(i) for i in range(MAX_BATCH)]}).encode())
    assert answer.status_code == 400
    body = answer.json()
    assert listed_items(body) == {f"items[{i}" for i in range(MAX_ITEM_ERRORS)}
    assert body["items"] == [
        f"{MAX_BATCH - MAX_ITEM_ERRORS:,} more items have errors; the first "
        f"{MAX_ITEM_ERRORS} are listed."
    ]
    assert len(answer.content) < 64 * 1024
    assert not LiquidationTakeover.objects.exists()


@pytest.mark.django_db
def test_a_body_that_says_it_is_too_large_is_refused_before_it_is_read(engine, linear, recent):
    declared = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    answer = send(engine, b'{"items": []}', CONTENT_LENGTH=str(declared))
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]


@pytest.mark.django_db
def test_a_body_larger_than_the_limit_is_refused_unparsed(engine, linear, recent):
    item = takeover_item("x" * 64)
    count = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // len(json.dumps(item)) + 10
    answer = send(engine, json.dumps({"items": [item] * count}).encode())
    assert answer.status_code == 413
    assert not FundRecord.objects.exists()


# The same bodies against gunicorn, as production runs it: the worker answers each and lives.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, token: str, body: bytes) -> tuple[int, bytes]:
    """(status, body) of the answer; (413, b"") when the server refused the body before it was
    all sent and closed the connection under the sender (the answer is then lost with it)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{URL}",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except urllib.error.URLError as error:
        if isinstance(error.reason, BrokenPipeError | ConnectionResetError):
            return 413, b""
        raise


def worker_pids(master: int) -> set[str]:
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True
    )
    return set(children.stdout.split())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_hostile_batches_briefly_and_its_worker_lives(linear, recent, tmp_path):
    engine = UserFactory(username="trading-engine")
    token = api_token_create(user=engine, kind=ApiToken.Kind.ENGINE, name="bounded")[1]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_database("fund-test-web"),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "REDIS_URL": "",
        "HOME": str(tmp_path),
    }
    server = subprocess.Popen(
        gunicorn_command(port, 1, "--timeout", "60"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not worker_pids(server.pid) or post(port, token, b"{}")[0] != 400:
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.2)
        worker = worker_pids(server.pid)
        wrong = [{"external_id": f"x-{i}"} for i in range(MAX_BATCH)]
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        for body, status, most in [
            (json.dumps({"items": [{}] * 200_000}).encode(), 400, 500),  # 600 KB of {}
            (json.dumps({"items": wrong}).encode(), 400, 64 * 1024),
            (b'{"items": [' + b'{"a": 1},' * (limit // 9 + 1) + b"{}]}", 413, 500),  # 9 MB
            (b"[" * 100_000 + b"]" * 100_000, 400, 500),
        ]:
            answered, content = post(port, token, body)
            assert (answered, len(content) <= most) == (status, True), content[:300]
        assert worker_pids(server.pid) == worker  # the same worker, alive
        assert post(port, token, json.dumps({"items": [takeover_item("fine")]}).encode())[0] == 201
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert LiquidationTakeover.objects.count() == 1
