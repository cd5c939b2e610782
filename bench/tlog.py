"""The transparency log at 10,000,000 records on PostgreSQL (bench/run.py drives it).

A fresh database and one fund whose tree holds N leaves (10,000,000 by default), written through
the ledger's own log_append in batches of 1,048,576; 1,000 record rows at random seqs (so that the
inclusion endpoint finds its record; the leaves themselves are synthetic). Then, on gunicorn:
inclusion proofs at random seqs and consistency proofs from random sizes to N, each timed from
the client (request sent to answer read), p50 / p99 / max; the keeping of the tiles for each of 20
batches of 10,000 new leaves (log_append and its commit: what the tree adds to an intake batch
besides hashing its leaves); and the signing of a checkpoint after each batch (the consistency
check with the previous checkpoint, the root, the Ed25519 signature and the row written).

    DATABASE_URL=postgres://… python bench/tlog.py [--leaves 10000000] [--requests 1000]
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
os.environ.setdefault(
    "LOG_SIGNING_KEY", "PRIVATE+KEY+bench/log+12b7705e+AYr4Z7sTUX3z5n8y3InZSFTGVHc4FWZCXfwm+WETm1C2"
)
os.environ.setdefault("LOG_ORIGIN_HOST", "bench")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from webserver import gunicorn_command  # noqa: E402  (bench/webserver.py)

from fund.models import Fund, FundRecord  # noqa: E402
from fund.services.bulk import insert_rows, reserve_ids  # noqa: E402
from fund.services.ledger import RECORD_COLUMNS  # noqa: E402
from fund.services.transparency import checkpoint_sign, log_append, log_size  # noqa: E402
from statements.models import Asset  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "8098"))
CHUNK = 1 << 20


def leaves(start: int, count: int) -> list[bytes]:
    sha = hashlib.sha256
    return [sha(b"\x00" + i.to_bytes(8, "big")).digest() for i in range(start, start + count)]


def build(fund: Fund, total: int) -> float:
    began = time.perf_counter()
    size = 0
    while size < total:
        count = min(CHUNK, total - size)
        with transaction.atomic():
            log_append(fund=fund, size=size, leaves=leaves(size, count))
        size += count
    return time.perf_counter() - began


def place_records(fund: Fund, total: int, count: int) -> list[int]:
    """`count` record rows at random seqs, for the inclusion endpoint to find (the books'
    triggers are off for this one session: the rows are not a ledger)."""
    seqs = sorted(random.Random(5).sample(range(1, total + 1), count))
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        ids = reserve_ids(FundRecord, count)
        insert_rows(
            FundRecord,
            RECORD_COLUMNS,
            [(i, fund.id, seq, "deposit", 1, seq, now, None, None, None, "bench", None, "")
             for i, seq in zip(ids, seqs)],
        )  # fmt: skip
    return seqs


def timed_get(conn, path: str) -> float:
    began = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    seconds = time.perf_counter() - began
    assert response.status == 200, (path, response.status, body[:300])
    return seconds


def figures(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
        "count": len(ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    asset = Asset.objects.create(code="BENCH", name="Bench", precision=8)
    fund = Fund.objects.create(asset=asset, anchor=timezone.now())
    build_seconds = build(fund, args.leaves)
    assert log_size(fund) == args.leaves
    seqs = place_records(fund, args.leaves, args.requests)
    checkpoint_sign(fund=fund)
    signing, appending, size = [], [], args.leaves
    for _ in range(20):
        batch = leaves(size, 10_000)
        began = time.perf_counter()
        with transaction.atomic():
            log_append(fund=fund, size=size, leaves=batch)
        appending.append(time.perf_counter() - began)
        size += 10_000
        began = time.perf_counter()
        checkpoint = checkpoint_sign(fund=fund)
        signing.append(time.perf_counter() - began)
        assert checkpoint.size == size, (checkpoint.size, size)
    connection.close()
    env = {
        **os.environ,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
        "API_ANON_RATE": "1000000/minute",
    }
    server = subprocess.Popen(gunicorn_command(PORT, 2, "--timeout", "120"), cwd=ROOT, env=env)
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        rng = random.Random(9)
        api = "/api/v1/funds/BENCH/log"
        for seq in seqs[:20]:  # warm-up: each worker's connection and imports
            timed_get(conn, f"{api}/inclusion?seq={seq}&size={size}")
        inclusion = [
            timed_get(conn, f"{api}/inclusion?seq={seq}&size={size}")
            for seq in rng.sample(seqs, len(seqs))
        ]
        consistency = [
            timed_get(conn, f"{api}/consistency?first={rng.randint(1, size - 1)}&second={size}")
            for _ in range(args.requests)
        ]
        checkpoint_answer = [timed_get(conn, "/log/BENCH/checkpoint") for _ in range(100)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(
        json.dumps(
            {
                "leaves": args.leaves,
                "build_seconds": build_seconds,
                "inclusion": figures(inclusion),
                "consistency": figures(consistency),
                "checkpoint": figures(checkpoint_answer),
                "signing": figures(signing),
                "appending": figures(appending),
            }
        )
    )


if __name__ == "__main__":
    main()
