"""Settings read from the environment: a bad boolean or number stops the start-up with the
variable's name; X-Forwarded-Proto is trusted only with DJANGO_BEHIND_PROXY; collectstatic works
with the README's production variables; .env.example lists every variable.

Each check that needs the settings as a start-up reads them runs them in a fresh process, with
config.settings.base and none of the settings' variables inherited from this environment."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import env_bool, env_float, env_int

ROOT = Path(__file__).resolve().parents[2]
BASE_SOURCE = (ROOT / "config" / "settings" / "base.py").read_text()


def names_read_by(*readers: str) -> list[str]:
    pattern = rf'\b(?:{"|".join(re.escape(r) for r in readers)})\(\s*"([A-Z][A-Z0-9_]*)"'
    return sorted(set(re.findall(pattern, BASE_SOURCE)))


BOOL_NAMES = names_read_by("env_bool")
NUMBER_NAMES = names_read_by("env_int", "env_float")
ALL_NAMES = names_read_by(
    "env_bool", "env_int", "env_float", "_env_raw", "env.str", "env.list", "env.db_url"
)


def clean_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """This environment without DATABASE_URL, REDIS_URL or any other variable the settings read,
    then SQLite in tmp_path (so that no .env file can point the process at PostgreSQL) and the
    given variables."""
    env = {k: v for k, v in os.environ.items() if k not in {*ALL_NAMES, "DATABASE_URL"}}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests' live server only
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env["REDIS_URL"] = ""
    env.update(variables)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def start(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({n: str(getattr(settings, n)) if n == 'STATIC_ROOT' "
        "else getattr(settings, n, None) for n in "
        "['SECURE_SSL_REDIRECT', 'SECURE_PROXY_SSL_HEADER', 'STATIC_ROOT']}))"
    )
    return run(clean_env(tmp_path, **variables), "-c", code)


def settings_after_start(tmp_path: Path, **variables: str) -> dict:
    done = start(tmp_path, **variables)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_reads_booleans_numbers_and_no_other_way():
    assert not re.search(r"\benv\.(bool|int|float)\(", BASE_SOURCE)
    assert len(BOOL_NAMES) >= 8 and len(NUMBER_NAMES) >= 8  # the patterns still find the reads
    assert {"DJANGO_SECURE", "DJANGO_BEHIND_PROXY"} <= set(BOOL_NAMES)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[(w, True) for w in ["true", "TRUE", "True", "yes", "YES", "on", "On", "1", " yes "]],
        *[(w, False) for w in ["false", "FALSE", "False", "no", "No", "off", "OFF", "0"]],
    ],
)
def test_it_takes_each_accepted_boolean_word_in_any_case(monkeypatch, raw, value):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", default=not value) is value


@pytest.mark.parametrize("default", [True, False])
def test_it_takes_an_empty_or_unset_boolean_for_its_default(monkeypatch, default):
    monkeypatch.delenv("SOME_FLAG", raising=False)
    assert env_bool("SOME_FLAG", default=default) is default
    monkeypatch.setenv("SOME_FLAG", "  ")
    assert env_bool("SOME_FLAG", default=default) is default


@pytest.mark.parametrize("raw", ["treu", "y", "ok", "2", "-1", "enabled", "nope"])
def test_it_refuses_any_other_boolean_word(monkeypatch, raw):
    monkeypatch.setenv("SOME_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"SOME_FLAG={raw!r}"):
        env_bool("SOME_FLAG", default=False)


def test_it_reads_numbers_and_names_the_variable_of_a_bad_one(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", " 42 ")
    assert env_int("SOME_NUMBER", default=1) == 42 and env_float("SOME_NUMBER", default=1) == 42.0
    monkeypatch.setenv("SOME_NUMBER", "")
    assert env_int("SOME_NUMBER", default=None) is None
    for raw, read in [
        ("1.5", env_int),
        ("12x", env_int),
        ("-1", lambda n, default: env_int(n, default, minimum=0)),
        ("0.05s", env_float),
        ("nan", env_float),
        ("inf", env_float),
        ("-0.5", lambda n, default: env_float(n, default, minimum=0)),
    ]:
        monkeypatch.setenv("SOME_NUMBER", raw)
        with pytest.raises(ImproperlyConfigured, match=rf"SOME_NUMBER={raw!r}"):
            read("SOME_NUMBER", default=1)


@pytest.mark.parametrize(
    ("raw", "on"),
    [("TRUE", True), ("Yes", True), ("on", True), ("1", True)]
    + [("False", False), ("NO", False), ("Off", False), ("0", False), ("", False)],
)
def test_it_starts_with_each_accepted_word(tmp_path, raw, on):
    assert settings_after_start(tmp_path, DJANGO_SECURE=raw)["SECURE_SSL_REDIRECT"] is on


def test_it_refuses_to_start_with_a_misspelt_django_secure(tmp_path):
    done = start(tmp_path, DJANGO_SECURE="treu")
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "DJANGO_SECURE='treu'" in done.stderr


@pytest.mark.parametrize("name", BOOL_NAMES)
def test_it_refuses_to_start_with_any_boolean_that_is_not_a_word(tmp_path, name):
    done = start(tmp_path, **{name: "treu"})
    assert done.returncode != 0 and f"{name}='treu'" in done.stderr, done.stderr


@pytest.mark.parametrize("name", NUMBER_NAMES)
def test_it_refuses_to_start_with_any_number_that_does_not_parse(tmp_path, name):
    done = start(tmp_path, **{name: "12x"})
    assert done.returncode != 0 and f"{name}='12x'" in done.stderr, done.stderr


def test_it_trusts_x_forwarded_proto_only_behind_a_proxy(tmp_path):
    assert settings_after_start(tmp_path)["SECURE_PROXY_SSL_HEADER"] is None
    secure_alone = settings_after_start(tmp_path, DJANGO_SECURE="true")
    assert secure_alone["SECURE_PROXY_SSL_HEADER"] is None
    behind = settings_after_start(tmp_path, DJANGO_BEHIND_PROXY="true")
    assert behind["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_it_has_a_static_root_in_every_mode(tmp_path):
    default = settings_after_start(tmp_path)["STATIC_ROOT"]
    assert default == str(ROOT / "staticfiles")
    relative = settings_after_start(tmp_path, DJANGO_STATIC_ROOT="build/static")["STATIC_ROOT"]
    assert relative == str(ROOT / "build" / "static")


@pytest.mark.parametrize("manifest", ["true", "false"])
def test_it_collects_static_files_with_the_production_variables(tmp_path, manifest):
    static_root = tmp_path / "static"
    env = clean_env(
        tmp_path,
        REDIS_URL="redis://127.0.0.1:9/15",  # nothing listens there: collectstatic needs no Redis
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_REQUIRE_SECRET_KEY="true",
        DJANGO_ALLOWED_HOSTS="fund.example.com",
        DJANGO_MANIFEST_STATIC=manifest,
        DJANGO_SECURE="true",
        DJANGO_BEHIND_PROXY="true",
        DJANGO_STATIC_ROOT=str(static_root),
    )
    done = run(env, "manage.py", "collectstatic", "--noinput")
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = static_root / "vendor" / "plotly" / "plotly-basic-4.1.1.min.js"
    assert bundle.is_file()
    assert (static_root / "staticfiles.json").is_file() is (manifest == "true")
    if manifest == "true":  # hashed, and compressed by collectstatic (brotli and gzip)
        hashed = next(bundle.parent.glob("plotly-basic-4.1.1.min.*.js"))
        assert hashed.with_name(hashed.name + ".br").is_file()
        assert hashed.with_name(hashed.name + ".gz").is_file()


def test_the_vendored_plotly_bundle_is_the_plotly_js_the_plotly_package_ships():
    """static/vendor/plotly holds plotly.js's basic bundle at the version of the plotly package
    pinned in the lock, with brotli and gzip forms of exactly its bytes: upgrading plotly without
    `make plotly-bundle` fails here."""
    import gzip

    import brotli
    import plotly
    from django.conf import settings

    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()[:200]
    version = re.search(r"plotly\.js v(\d+\.\d+\.\d+)", shipped).group(1)
    assert settings.PLOTLY_JS_VERSION == version
    bundle = ROOT / "static" / settings.PLOTLY_BUNDLE
    body = bundle.read_bytes()
    assert f"plotly.js (basic - minified) v{version}".encode() in body[:200]
    assert brotli.decompress(bundle.with_name(bundle.name + ".br").read_bytes()) == body
    assert gzip.decompress(bundle.with_name(bundle.name + ".gz").read_bytes()) == body


def test_it_lists_every_variable_the_settings_read_in_env_example():
    example = (ROOT / ".env.example").read_text()
    assert len(ALL_NAMES) >= 20  # the patterns still find the reads
    missing = [n for n in ALL_NAMES if not re.search(rf"^# {n}=", example, re.MULTILINE)]
    assert not missing, f"not in .env.example: {missing}"


@pytest.mark.parametrize(
    "variable, value, says",
    [
        ("IDEMPOTENCY_KEY_HOURS", "1000000000", "must be at most"),
        ("BOOKS_LOCK_TIMEOUT", "3000000", "must be at most"),
        ("API_ANON_RATE", "600/fortnight", "is not a rate"),
        ("API_ANON_RATE", "600", "is not a rate"),
    ],
)
def test_it_refuses_to_start_with_a_value_that_would_break_every_request(
    tmp_path, variable, value, says
):
    done = start(tmp_path, **{variable: value})
    assert done.returncode != 0 and f"{variable}={value!r}" in done.stderr and says in done.stderr


def test_it_reads_a_secret_key_that_starts_with_a_dollar_as_it_is(tmp_path):
    key = "$" + "k" * 60
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SECRET_KEY)"
    )
    done = run(clean_env(tmp_path, DJANGO_SECRET_KEY=key), "-c", code)
    assert done.stdout.strip().splitlines()[-1] == key, done.stderr
