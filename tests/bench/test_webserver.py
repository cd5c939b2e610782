"""bench/webserver.py: the benchmarks' gunicorn instances open no control socket, so two on one
host (two bench runs, a bench beside a demo or the production web) keep out of each other's way.
gunicorn's default socket is one path per user, taken over by each instance that starts and
deleted by the first that stops."""

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.webserver import gunicorn_command

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return answer.read()


def start(command: list[str], home: Path) -> subprocess.Popen:
    """gunicorn with HOME and XDG_RUNTIME_DIR in `home`, where its default socket would go."""
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REDIS_URL": "",
    }
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_for(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"gunicorn on {port} exited with {server.returncode}"
        try:
            if healthz(port) == b"ok":
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn on {port} did not answer")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        server.wait(timeout=30)


def test_every_bench_script_starts_gunicorn_through_the_one_command():
    for script in sorted((ROOT / "bench").glob("*.py")):
        if script.name != "webserver.py":
            assert not re.search(r'"-m",\s*"gunicorn"', script.read_text()), script.name
    assert "--no-control-socket" in gunicorn_command(8000, 1)


def test_two_instances_run_side_by_side_and_leave_no_control_socket(tmp_path):
    ports = [free_port(), free_port()]
    servers = [start(gunicorn_command(port, 1), tmp_path) for port in ports]
    try:
        for port, server in zip(ports, servers):
            wait_for(port, server)
        assert sorted(p.name for p in tmp_path.rglob("*.ctl")) == []
        stop(servers[0])
        assert healthz(ports[1]) == b"ok"
    finally:
        for server in servers:
            stop(server)


def test_without_the_flag_gunicorn_would_put_its_socket_at_the_shared_path(tmp_path):
    """The check above is not vacuous: the same start without --no-control-socket makes the
    one socket every instance of this user would share."""
    port = free_port()
    command = [part for part in gunicorn_command(port, 1) if part != "--no-control-socket"]
    server = start(command, tmp_path)
    try:
        wait_for(port, server)
        deadline = time.monotonic() + 10
        while not (tmp_path / "gunicorn.ctl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "gunicorn.ctl").exists()
    finally:
        stop(server)
