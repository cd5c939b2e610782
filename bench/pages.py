"""Page speed (bench/run.py drives it): requests per second and p99 latency of the overview and a
fund page under 32 concurrent connections on gunicorn, beside a trivial view in the same run; and
the balance-history query for a fund of 1,000 records against one of 1,000,000.

    DATABASE_URL=postgres://… python bench/pages.py
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_redis() -> str:
    """The web processes' cache, shared as in production (BENCH_REDIS_URL; emptied first)."""
    import redis

    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    redis.Redis.from_url(url).flushdb()
    return url


sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from webserver import gunicorn_command  # noqa: E402  (bench/webserver.py)

from fund import charts, selectors  # noqa: E402
from fund.models import Fund, FundRecord  # noqa: E402
from fund.services.ledger import Entry, ledger_append  # noqa: E402
from statements.models import Asset  # noqa: E402

PORT = int(os.environ.get("BENCH_PORT", "8098"))
URLS = {
    "trivial view (/healthz)": "/healthz",
    "overview (/)": "/",
    "fund page (/funds/USDT/)": "/funds/USDT/",
}


def wrk(url: str, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url], capture_output=True, text=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def page_speed(seconds: int) -> dict:
    env = {
        **os.environ,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        "REDIS_URL": bench_redis(),
    }
    server = subprocess.Popen(
        gunicorn_command(PORT, 4),
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{PORT}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        for path in URLS.values():  # warm every worker's cache
            for _ in range(8):
                urllib.request.urlopen(base + path, timeout=30).read()
        return {name: wrk(base + path, seconds) for name, path in URLS.items()}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


SPAN = timedelta(hours=1000)  # both funds: records in each of the same 1,000 hours


def fund_with_records(code: str, count: int) -> Fund:
    """A fund with `count` records spread over SPAN, appended by the ledger (COPY batches)."""
    asset = Asset.objects.create(code=code, precision=8)
    start = timezone.now() - SPAN
    fund = Fund.objects.create(asset=asset, anchor=start)
    step = SPAN / count
    done = 0
    while done < count:
        size = min(10_000, count - done)
        with transaction.atomic():
            locked = Fund.objects.select_for_update().get(pk=fund.pk)
            ledger_append(
                fund=locked,
                entries=[
                    Entry(
                        FundRecord.Kind.DEPOSIT,
                        1 + (done + i) % 1000,
                        start + step * (done + i),
                        reason="bench",
                    )
                    for i in range(size)
                ],
            )
        done += size
    return fund


def history_speed(runs: int = 20) -> dict:
    results = {}
    for code, count in (("HK", 1_000), ("HM", 1_000_000)):
        fund = fund_with_records(code, count)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            selectors.fund_history(fund=fund, bucket="day")
            charts.balance_series(fund=fund)
            times.append(time.perf_counter() - started)
        results[count] = statistics.median(times)
    return results


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("bench/pages.py needs wrk: apt-get install -y wrk")
    call_command("migrate", verbosity=0)
    call_command("load_demo", "--days", "30", "--seed", "5", verbosity=0)
    connection.close()
    pages = page_speed(int(os.environ.get("BENCH_SECONDS", "10")))
    history = history_speed()
    print(json.dumps({"pages": pages, "history": history}))


if __name__ == "__main__":
    main()
