"""make bench: settlement of large cycles on PostgreSQL and SQLite, against the COPY floor.

Each step runs in a fresh process (bench/settle.py), so the peak memory printed is the settling
process's own. PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/
insurance_fund_bench), a database this script drops and recreates. SQLite: a file in bench/results/.

    python bench/run.py                       # PostgreSQL 100,000 and 1,000,000; SQLite 100,000
    python bench/run.py --pg 100000 --sqlite 10000
    python bench/run.py --pg --sqlite --ingest-batches 0 --no-pages \\
        --load-positions 100000               # the load run only

The load run (bench/load.py): readers on gunicorn while a 1,000,000-position settlement and
ingestion batches run, with checkers that fail the run on any error or half-settled cycle.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/insurance_fund_bench"


def step(database_url: str, *args) -> dict:
    """One step of bench/settle.py in a fresh process."""
    return step_script(database_url, "settle.py", *args)


def step_script(database_url: str, script: str, *args, keep_failed_result: bool = False) -> dict:
    """One bench script in a fresh process; its result is the last line of its stdout. With
    keep_failed_result, a script that failed but still printed its result returns it, with its
    message under "failed" (the load run reports its figures and then fails)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "REDIS_URL": "",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *map(str, args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode and not (keep_failed_result and lines and lines[-1].startswith("{")):
        sys.exit(f"bench {script} failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    if done.returncode:
        result["failed"] = done.stderr[-3000:]
    return result


def header_row(columns: list[tuple[str, int]]) -> str:
    """A table's header: (title, width) pairs, the first column left-aligned, the others
    right-aligned, one space apart."""
    (first, first_width), *rest = columns
    return " ".join([f"{first:<{first_width}}", *(f"{title:>{width}}" for title, width in rest)])


def recreate_postgres(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def recreate_sqlite(n: int) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{n}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="positions settled on PostgreSQL",
    )
    parser.add_argument(
        "--sqlite", type=int, nargs="*", default=[100_000], help="positions settled on SQLite"
    )
    parser.add_argument(
        "--ingest-batches",
        type=int,
        default=5,
        help="10,000-item batches sent to the API (0: none)",
    )
    parser.add_argument(
        "--log-leaves",
        type=int,
        default=10_000_000,
        help="records in the transparency-log benchmark (0: none)",
    )
    parser.add_argument(
        "--fan-out",
        type=int,
        default=1_000_000,
        help="positions of the settlement timed again with its fan-out's targets (every account "
        "a login with an email address, a webhook endpoint), then streamed through the engine's "
        "feed; 0 to skip",
    )
    parser.add_argument(
        "--no-pages", action="store_true", help="skip the page-speed and history benchmarks"
    )
    parser.add_argument(
        "--no-load",
        action="store_true",
        help="skip the load run (readers during settlement and ingestion)",
    )
    parser.add_argument(
        "--load-positions",
        type=int,
        default=1_000_000,
        help="positions settled during the load run",
    )
    args = parser.parse_args()
    pg_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)

    rows, floors = [], {}
    for n in args.pg:
        recreate_postgres(pg_url)
        print(f"PostgreSQL, {n:,} positions: preparing …", file=sys.stderr, flush=True)
        step(pg_url, "prepare", n)
        floors[n] = step(pg_url, "copy", n)["seconds"]  # leaves the statements table empty again
        rows.append(("PostgreSQL", n, step(pg_url, "settle")))
    for n in args.sqlite:
        url = recreate_sqlite(n)
        print(f"SQLite, {n:,} positions: preparing …", file=sys.stderr, flush=True)
        step(url, "prepare", n)
        rows.append(("SQLite", n, step(url, "settle")))
        if n not in floors:
            recreate_postgres(pg_url)
            step(pg_url, "prepare", 1)
            floors[n] = step(pg_url, "copy", n)["seconds"]

    fan_out = None
    if args.fan_out:
        n = args.fan_out
        plain = next((r for db, size, r in rows if db == "PostgreSQL" and size == n), None)
        if plain is None:
            recreate_postgres(pg_url)
            print(f"PostgreSQL, {n:,} positions, no fan-out targets …", file=sys.stderr, flush=True)
            step(pg_url, "prepare", n)
            plain = step(pg_url, "settle")
        recreate_postgres(pg_url)
        print(
            f"PostgreSQL, {n:,} positions with the fan-out's targets, then the engine's feed …",
            file=sys.stderr,
            flush=True,
        )
        step(pg_url, "prepare", n)
        fan_out = {"n": n, "plain": plain, "with": step(pg_url, "settle", "--fan-out")}
        fan_out["feed"] = step(pg_url, "feed")

    ingest = None
    if args.ingest_batches:
        recreate_postgres(pg_url)
        print(
            "PostgreSQL, ingestion through the HTTP API (gunicorn) …", file=sys.stderr, flush=True
        )
        ingest = step_script(pg_url, "ingest.py", "--batches", args.ingest_batches)
        recreate_postgres(pg_url)
        print("… and again without keeping the log's tiles …", file=sys.stderr, flush=True)
        ingest["without_log"] = step_script(
            pg_url, "ingest.py", "--batches", args.ingest_batches, "--without-log"
        )

    tlog = None
    if args.log_leaves:
        recreate_postgres(pg_url)
        print(
            f"PostgreSQL, a transparency log of {args.log_leaves:,} records: proofs on gunicorn, "
            "checkpoint signing …",
            file=sys.stderr,
            flush=True,
        )
        tlog = step_script(pg_url, "tlog.py", "--leaves", args.log_leaves)

    pages = None
    if not args.no_pages:
        recreate_postgres(pg_url)
        print(
            "PostgreSQL, pages under 32 connections (gunicorn, wrk) and the history query …",
            file=sys.stderr,
            flush=True,
        )
        pages = step_script(pg_url, "pages.py")

    load = None
    if not args.no_load:
        recreate_postgres(pg_url)
        print(
            f"PostgreSQL, load run: readers while {args.load_positions:,} positions settle "
            "and takeovers are ingested …",
            file=sys.stderr,
            flush=True,
        )
        load = step_script(
            pg_url, "load.py", "--positions", args.load_positions, keep_failed_result=True
        )

    if rows:
        print_settlement(rows, floors)
    if fan_out:
        print_fan_out(fan_out)
    if ingest:
        size = ingest["size"]
        print()
        print(
            f"Ingestion through the HTTP API on PostgreSQL: {size:,}-item batches, "
            "client-side time per request"
        )
        header = header_row(
            [
                ("batch", 22),
                ("requests", 8),
                ("median s", 9),
                ("items/s", 9),
                ("best items/s", 13),
                ("COPY s", 7),
                ("COPY items/s", 13),
                ("× COPY", 7),
            ]
        )
        print(header)
        print("-" * len(header))
        for name, label in (
            ("takeovers", "liquidation takeovers"),
            ("profits", "position profits"),
            ("replay", "replayed takeovers"),
        ):
            times = ingest[name]
            floor = ingest["floor"].get(name)
            median = statistics.median(times)
            print(
                f"{label:<22} {len(times):>8} {median:>9.3f} "
                f"{size / median:>9,.0f} {size / min(times):>13,.0f} "
                + (
                    f"{floor:>7.3f} {size / floor:>13,.0f} {median / floor:>7.2f}"
                    if floor
                    else f"{'–':>7} {'–':>13} {'–':>7}"
                )
            )
        for kind, label in (
            ("takeovers", "liquidation takeovers"),
            ("profits", "position profits"),
        ):
            print(
                f"{label}, {ingest['streams']} connections side by side: "
                f"{ingest['concurrent'][kind]:,.0f} items/s"
            )
        alone = ingest["floor"]["takeover rows alone"]
        print(
            f"COPY of takeovers: the {size:,} takeover rows and the {ingest['records']:,} fund "
            f"records of the profitable ones, as the intake writes them; the takeover rows alone: "
            f"{alone:.3f} s ({size / alone:,.0f} items/s, takeovers at "
            f"{statistics.median(ingest['takeovers']) / alone:.2f}× it)."
        )
        print(
            "Goal: at least 50,000 items/s and at most 2× COPY. "
            "A replay answers every item as existing and writes nothing."
        )
        without = ingest["without_log"]
        kept, bare = (statistics.median(x["takeovers"]) for x in (ingest, without))
        print(
            f"Keeping the transparency log's tiles ({ingest['leaves']:,} leaves written): "
            f"takeovers {size / kept:,.0f} items/s with them, {size / bare:,.0f} without "
            f"(median s {kept:.3f} / {bare:.3f}: {kept / bare:.2f}×; goal at most 1.2×)."
        )
    if tlog:
        print()
        print(
            f"Transparency log of {tlog['leaves']:,} records on PostgreSQL (tiles built in "
            f"{tlog['build_seconds']:.1f} s); proofs through gunicorn (2 workers), client-side ms"
        )
        header = header_row([("answer", 34), ("requests", 8), ("p50 ms", 8), ("p99 ms", 8),
                             ("max ms", 8)])  # fmt: skip
        print(header)
        print("-" * len(header))
        for key, label in (
            ("inclusion", "a record's inclusion proof"),
            ("consistency", "a consistency proof to the newest"),
            ("checkpoint", "the checkpoint (a trivial answer)"),
            ("appending", "keeping the tiles of 10,000 records"),
            ("signing", "signing after 10,000 new records"),
        ):
            f = tlog[key]
            print(f"{label:<34} {f['count']:>8} {f['p50']:>8.1f} {f['p99']:>8.1f} {f['max']:>8.1f}")
        print("Goals: proofs at most 20 ms p99; signing at most 100 ms.")
    if pages:
        print()
        print(
            "Pages on gunicorn (4 workers), 32 concurrent connections (wrk), "
            "30 days of demo data on PostgreSQL"
        )
        header = header_row([("page", 26), ("requests/s", 11), ("p99 ms", 8), ("of trivial", 11)])
        print(header)
        print("-" * len(header))
        trivial = pages["pages"]["trivial view (/healthz)"]["rps"]
        for name, r in pages["pages"].items():
            print(
                f"{name:<26} {r['rps']:>11,.0f} {r['p99_ms']:>8.1f} {r['rps'] / trivial:>10.0%}"
                + (f"  ({r['non_2xx']} non-2xx!)" if r["non_2xx"] else "")
            )
        print("Goal: the overview at 70 % or more of the trivial view's throughput.")
        small, large = pages["history"]["1000"], pages["history"]["1000000"]
        print()
        print(
            "Balance-history query (day buckets + the chart's hourly series), "
            "funds with records in the same 1,000 hours"
        )
        print(
            f"  1,000 records: {small * 1000:.1f} ms   "
            f"1,000,000 records: {large * 1000:.1f} ms   "
            f"ratio {large / small:.2f}x"
            "   (goal: within 1.5x)"
        )
    if load:
        print_load(load)
        if load.get("failed"):
            sys.exit(f"\nbench load.py failed:\n{load['failed']}")


def print_fan_out(fan_out) -> None:
    plain, with_, feed = fan_out["plain"], fan_out["with"], fan_out["feed"]
    print()
    print(f"Settlement results flowing back, {fan_out['n']:,} positions on PostgreSQL")
    print(
        f"  settlement until its commit: {plain['seconds']:.2f} s without fan-out targets, "
        f"{with_['seconds']:.2f} s with them: {with_['seconds'] / plain['seconds']:.2f}x "
        "(goal: at most 1.1x)"
    )
    print(
        f"  the fan-out after the commit (on a worker): {with_['fan_out_seconds']:.2f} s for "
        f"{with_['emails']:,} emails (one per trader, dummy backend) and "
        f"{with_['webhooks']} webhooks; {plain['fan_out_seconds']:.2f} s with no targets"
    )
    for fmt in ("jsonl", "csv"):
        f = feed[fmt]
        print(
            f"  the engine's feed, {feed['rows']:,} apportionments as {fmt}: "
            f"{f['feed_seconds']:.2f} s ({f['bytes'] / 2**20:.0f} MiB) against COPY (SELECT …) "
            f"TO STDOUT {f['copy_seconds']:.2f} s: {f['feed_seconds'] / f['copy_seconds']:.2f}x "
            "(goal: at most 2x)"
        )
    print(
        f"  the feed's process: {feed['rss_before_mib']:.0f} MiB before, "
        f"{feed['peak_rss_mib']:.0f} MiB at its peak after streaming both"
    )


def print_settlement(rows, floors) -> None:
    print()
    print(
        "Settlement of one cycle (statements + apportionments + coverage record, one transaction)"
    )
    header = header_row(
        [
            ("database", 11),
            ("positions", 10),
            ("participants", 12),
            ("settle s", 9),
            ("positions/s", 12),
            ("peak MiB", 9),
            ("COPY s", 7),
            ("settle/COPY", 11),
        ]
    )
    print(header)
    print("-" * len(header))
    for database, n, r in rows:
        floor = floors.get(n)
        ratio = f"{r['seconds'] / floor:.2f}×" if floor else "–"
        print(
            f"{database:<11} {n:>10,} {r['participants']:>12,} "
            f"{r['seconds']:>9.2f} {n / r['seconds']:>12,.0f} "
            f"{r['peak_rss_mib']:>9.0f} {floor or 0:>7.2f} {ratio:>11}"
        )
    print()
    print(
        "COPY s: PostgreSQL COPY of the same number of statement rows "
        "into the empty statements table, committed\n"
        "(foreign keys checked): the floor. "
        "The settlement writes as many statements and apportionments."
    )
    print("peak MiB: the settling process's peak resident memory, Python and Django included.")
    print("Goal: 1,000,000 positions settle on PostgreSQL in under 3x the COPY time, within 1 GiB.")


def print_load(load: dict) -> None:
    settlement, ingest = load["settlement"], load["ingest"]
    print()
    print(f"Load: readers while a {load['positions']:,}-position settlement and ingestion run")
    print(
        f"(gunicorn {load['workers']} workers on PostgreSQL, "
        f"{load['readers']} readers one request at a time each, "
        f"{load['window_seconds']:.0f} s; history of {load['history_records']:,} records)"
    )
    header = header_row(
        [
            ("readers: URL", 30),
            ("requests", 9),
            ("req/s", 7),
            ("p50 ms", 8),
            ("p99 ms", 8),
            ("max ms", 8),
        ]
    )
    print(header)
    print("-" * len(header))
    for name, r in load["per_url"].items():
        print(
            f"{name:<30} {r['requests']:>9,} {r['rps']:>7.1f} "
            f"{r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} {r['max_ms']:>8.0f}"
        )
    print(
        f"{'all':<30} {load['requests']:>9,} {load['rps']:>7.1f} "
        f"{load['p50_ms']:>8.0f} {load['p99_ms']:>8.0f} {load['max_ms']:>8.0f}"
    )
    if load.get("rps_during_settlement") is not None:
        print(
            f"  readers' requests/s while the settlement ran: {load['rps_during_settlement']:.1f}"
        )
    errors = {
        "readers": load["reader_errors"],
        "checkers": load["checker_errors"],
        "ingestion": load["ingest_errors"],
    }
    print(
        f"  errors (non-2xx or connection): {load['errors']}"
        + "".join(
            f"   {who}: {e['count']} {e['statuses'] or ''}{e['connection_errors'] or ''}"
            for who, e in errors.items()
            if e["count"]
        )
    )
    if settlement:
        print(
            f"  settlement under load: {settlement['seconds']:.2f} s "
            f"({settlement['participants']:,} participants, "
            f"{settlement['wall_seconds']:.2f} s with the process's start-up, "
            f"peak {settlement['peak_rss_mib']:.0f} MiB)"
        )
    else:
        print("  settlement under load: did not finish")
    batch = max(ingest["batch_seconds"], default=0)
    print(
        f"  ingestion under load: {ingest['items']:,} takeovers in {ingest['batches']} batches, "
        f"{ingest['seconds']:.2f} s, "
        f"{ingest['items_per_s']:,.0f} items/s (slowest batch {batch:.2f} s)"
    )
    checks = ", ".join(f"{n} {what}" for what, n in load["checks"].items())
    print(
        f"  consistency checks: {load['checks_total']:,} ({load['checks_per_s']:.1f}/s: {checks}); "
        f"cycle seen as {' → '.join(load['cycle_statuses_seen'])}; "
        f"violations: {load['violations']}"
    )
    for violation in load["violation_samples"]:
        print(f"    ! {violation}")
    final = load.get("final") or {}
    if final.get("fund_page_reads"):
        print(
            "  after the run: /funds/USDT/ showed a stale balance in "
            f"{final['fund_page_stale']} of {final['fund_page_reads']} "
            "reads after the run (pages cached in Redis, as in production)"
        )
    print("Goal: no errors, no half-settled cycle visible.")


if __name__ == "__main__":
    main()
