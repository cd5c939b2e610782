"""How the benchmarks start gunicorn (bench/pages.py, ingest.py, load.py): one command line.

gunicorn (25.1 and later) opens a control socket for `gunicornc` at one path per user,
$XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl, whatever the instance: a second
instance on the host (another bench run, a demo, the production web) takes that path over, and
the first of them to stop deletes it from under the other. The benchmarks never use it, so
their instances open none (--no-control-socket)."""

import sys


def gunicorn_command(port: int, workers: int, *options: str) -> list[str]:
    """gunicorn serving config.wsgi on 127.0.0.1:port with `workers` sync workers, warnings
    only, no control socket; `options` go on the end (e.g. "--timeout", "120")."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-control-socket",
        *options,
    ]
