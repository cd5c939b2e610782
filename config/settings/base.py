"""Settings read from the environment (see .env.example); bad values stop the start-up.

With nothing set: SQLite in the project folder, local-memory cache, Celery tasks run in-process.
With DATABASE_URL: PostgreSQL through psycopg 3. With REDIS_URL: Redis as Celery broker and cache,
tasks run on Celery workers and beat.
"""

import math
import os
import re
import warnings
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # into os.environ; set variables win

# Booleans, integers and floats are read only through these helpers, never env.bool/int/float:
# django-environ takes any unknown word for false (DJANGO_SECURE=treu would turn HTTPS hardening
# off) and its errors do not name the variable. Empty or unset means the default.
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def _env_raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def env_bool(name: str, default: bool) -> bool:
    raw = _env_raw(name)
    if not raw:
        return default
    if raw.lower() in _TRUE_WORDS:
        return True
    if raw.lower() in _FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use true/false, yes/no, on/off or 1/0 (any case)."
    )


def env_int(
    name: str, default: int | None, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    raw = _env_raw(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    return _in_range(name, raw, value, minimum, maximum)


def _in_range(name: str, raw: str, value, minimum, maximum):
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at most {maximum}.")
    return value


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    raw = _env_raw(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a finite number.")
    return _in_range(name, raw, value, minimum, maximum)


DEBUG = env_bool("DJANGO_DEBUG", default=False)
# Read as it is: django-environ would take a key starting with "$" for another variable's name.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
_REQUIRE_SECRET_KEY = env_bool("DJANGO_REQUIRE_SECRET_KEY", default=False)  # checked even when set
if not SECRET_KEY:
    if not DEBUG and _REQUIRE_SECRET_KEY:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production.")
    SECRET_KEY = "insecure-local-development-key-change-me-in-production-0123456789"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "statements",
    "fund",
]

MIDDLEWARE = [
    "config.middleware.ForwardedForMiddleware",
    "config.middleware.UnstorableTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "config.middleware.StaticFilesMiddleware",
    "config.middleware.CompressedPagesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fund.context_processors.notices",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Persistent connections (checked before reuse) save a new PostgreSQL connection per request.
_ON_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DATABASES["default"].setdefault(
    "CONN_MAX_AGE", env_int("DJANGO_CONN_MAX_AGE", default=60 if _ON_POSTGRES else 0, minimum=0)
)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue instead of failing at once; IMMEDIATE takes the write lock at BEGIN, so a
    # read-then-write transaction cannot deadlock against another writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:// URL.")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# No uploads; a media URL of its own keeps Django's live test server from serving every path
# as a media file (an empty MEDIA_URL prefixes them all).
MEDIA_URL = "media/"
# plotly.js: its basic bundle (scatter and bar traces, 1.2 MB, 0.33 MB as brotli) of the version
# the plotly package ships, vendored in static/vendor/plotly (`make plotly-bundle`), served from
# our own static files (no CDN). The package's full bundle is 4.8 MB.
STATICFILES_DIRS = [BASE_DIR / "static"]
# The plotly.js version the plotly package ships (tests/config/test_settings.py checks they agree).
PLOTLY_JS_VERSION = "4.1.1"
PLOTLY_BUNDLE = f"vendor/plotly/plotly-basic-{PLOTLY_JS_VERSION}.min.js"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Where `collectstatic` writes (in every mode, so that the README's production steps work); a
# relative DJANGO_STATIC_ROOT is taken from the project folder.
STATIC_ROOT = Path(os.path.abspath(BASE_DIR / (_env_raw("DJANGO_STATIC_ROOT") or "staticfiles")))
# Production (DJANGO_MANIFEST_STATIC=true): `collectstatic` writes hashed, compressed files that
# whitenoise serves.
if not env_bool("DJANGO_MANIFEST_STATIC", default=False):
    # Demo and development: whitenoise serves the files straight from static/.
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
    WHITENOISE_USE_FINDERS = True
    # Here STATIC_ROOT need not exist: keep whitenoise's "No directory at" warning for it quiet.
    warnings.filterwarnings(
        "ignore", message=re.escape(f"No directory at: {STATIC_ROOT}"), category=UserWarning
    )

# Content-Security-Policy: no inline or foreign scripts anywhere. Styles allow inline style
# attributes, which plotly sets on the charts it draws.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# X-Forwarded-Proto and X-Forwarded-For are trusted only when DJANGO_BEHIND_PROXY says that a
# proxy in front sets them (and overwrites any a client sent); otherwise a client could claim
# HTTPS, or another address, with a header. Behind the proxy, the client's address (for the
# login lockout, the throttles and the audit trail) is the one the proxy forwards
# (config/middleware.py).
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None

# Behind HTTPS in production (DJANGO_SECURE=true): redirect to HTTPS, HSTS, secure cookies.
# Off by default so that the demo works over http://127.0.0.1. The HSTS variables are checked
# even when it is off, so that a bad value shows before HTTPS is turned on.
_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", default=31536000, minimum=0)
_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=True)
if env_bool("DJANGO_SECURE", default=False):
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = _HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = _HSTS_PRELOAD
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Every password check (the login pages, Django's admin, the password change forms) takes a slot
# from two budgets first, atomically (statements/lockout.py): LOGIN_ACCOUNT_FAILURES per account
# and LOGIN_ADDRESS_FAILURES per client address over all accounts, per LOGIN_LOCKOUT_SECONDS
# window; a right password gives its slots back. A used-up account is locked for every address;
# a used-up address for every account.
AUTHENTICATION_BACKENDS = ["statements.lockout.LockoutModelBackend"]
LOGIN_ACCOUNT_FAILURES = env_int("LOGIN_ACCOUNT_FAILURES", default=5, minimum=1, maximum=1000)
LOGIN_ADDRESS_FAILURES = env_int("LOGIN_ADDRESS_FAILURES", default=20, minimum=1, maximum=100_000)
LOGIN_LOCKOUT_SECONDS = env_int(
    "LOGIN_LOCKOUT_SECONDS", default=15 * 60, minimum=1, maximum=7 * 24 * 3600
)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "fund:my-statements"
LOGOUT_REDIRECT_URL = "fund:overview"

# A 10,000-item ingestion batch is 2 to 5 MB of JSON; larger bodies are refused with 413,
# before they are read when Content-Length says so (fund/api/intake.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", default=8 * 1024 * 1024, minimum=1024
)

_API_ANON_RATE = env.str("API_ANON_RATE", default="600/minute")
if not re.fullmatch(r"[1-9][0-9]{0,8}/(second|minute|hour|day)", _API_ANON_RATE):
    raise ImproperlyConfigured(
        f"API_ANON_RATE={_API_ANON_RATE!r} is not a rate: use N/second, N/minute, N/hour or N/day."
    )
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "statements.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["fund.api.parsers.ExactJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "fund.api.renderers.FormatNegotiation",
    "DEFAULT_THROTTLE_CLASSES": ["fund.api.throttling.PublicAnonRateThrottle"],
    # Throttles key on REMOTE_ADDR, never on a client's own X-Forwarded-For (config/middleware.py
    # puts the proxy's forwarded address there when DJANGO_BEHIND_PROXY is set).
    "NUM_PROXIES": 0,
    "DEFAULT_THROTTLE_RATES": {"anon": _API_ANON_RATE},
    "DEFAULT_SCHEMA_CLASS": "fund.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "fund.api.exceptions.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["fund.api.filtering.FilterBackend"],
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Insurance Fund Portal API",
    "DESCRIPTION": (
        "Ingestion for the trading engine, the funds' public records, traders' own statements and "
        "admin actions. Amounts are decimal strings, exact to the asset's precision."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "fund.api.schema.filters_not_empty",
        "fund.api.schema.public_without_security",
    ],
    # The API's sections in reading order: what anyone reads, a trader's own, the trading
    # engine's, the exchange's staff.
    "TAGS": [
        {"name": "public", "description": "The funds, their records and the cycles: no token."},
        {"name": "traders", "description": "A trader's own statements, positions and tokens."},
        {"name": "ingestion", "description": "The engine reports takeovers, profits, prices."},
        {"name": "engine", "description": "The engine reads results back and acknowledges them."},
        {"name": "admin", "description": "Settlement staff: previews, settling, money, audit."},
    ],
    "ENUM_NAME_OVERRIDES": {
        "RecordKindEnum": "fund.models.FundRecord.Kind",
        "ContractKindEnum": "fund.models.Contract.Kind",
        "TokenKindEnum": "statements.models.ApiToken.Kind",
    },
}

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    # Short socket timeouts: an unreachable cache costs a request half a second, not minutes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Public pages are cached only in a cache every web process shares (fund/pagecache.py): with a
# per-process local-memory cache, one process's write could not refresh another's pages.
PAGE_CACHE = env_bool("PAGE_CACHE", default=bool(REDIS_URL))
PAGE_VERSION_SECONDS = env_float("PAGE_VERSION_SECONDS", default=0.05, minimum=0)

# The books' locks (fund/services/locks.py): a lock that waits longer than this many seconds
# gives up with "busy" (HTTP 503 with Retry-After; tasks retry).
BOOKS_LOCK_TIMEOUT = env_float("BOOKS_LOCK_TIMEOUT", default=10, minimum=0.001, maximum=3600)
# How long an Idempotency-Key is remembered (fund/services/idempotency.py); the beat prunes
# older ones every hour.
IDEMPOTENCY_KEY_HOURS = env_int("IDEMPOTENCY_KEY_HOURS", default=24, minimum=1, maximum=24 * 366)

# The funds' transparency logs (fund/services/transparency.py): checkpoints are signed with the
# Ed25519 key in LOG_SIGNING_KEY (its skey text, PRIVATE+KEY+…) or in the file LOG_SIGNING_KEY_FILE
# (made by `manage.py log_keygen`), never kept in the database; without either nothing is
# signed. A fund's log is named `<LOG_ORIGIN_HOST>/log/<ASSET>`: the host the site is served at.
LOG_SIGNING_KEY = _env_raw("LOG_SIGNING_KEY") or ""
LOG_SIGNING_KEY_FILE = _env_raw("LOG_SIGNING_KEY_FILE") or ""
# The verifier key the site publishes (name+keyid+key): set it where the web processes should not
# hold the private key; by default it is the signing key's own.
LOG_VERIFIER_KEY = _env_raw("LOG_VERIFIER_KEY") or ""
LOG_ORIGIN_HOST = _env_raw("LOG_ORIGIN_HOST") or (ALLOWED_HOSTS[0] if ALLOWED_HOSTS else "")

# The console flags a settled cycle the exchange has not acknowledged as applied after this long.
APPLY_ALERT_SECONDS = env_int("APPLY_ALERT_SECONDS", default=3600, minimum=1)
# The longest the engine's event feed holds a request open waiting for the next event (its `wait`
# asks for at most 30 s; each waiting request holds a web worker).
ENGINE_EVENTS_MAX_WAIT = env_int("ENGINE_EVENTS_MAX_WAIT", default=30, minimum=0, maximum=30)

# Webhooks (fund/services/webhooks.py): the retry schedule, the timeout of a POST, and whether a
# private or loopback address may be a target (never in production: the tests and the demo only).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", default=5, minimum=0.1, maximum=60)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", default=30, minimum=0.01)
WEBHOOK_RETRY_MAX_WAIT_SECONDS = env_float(
    "WEBHOOK_RETRY_MAX_WAIT_SECONDS", default=12 * 3600, minimum=0.01
)
WEBHOOK_RETRY_FOR_SECONDS = env_float(
    "WEBHOOK_RETRY_FOR_SECONDS", default=3 * 24 * 3600, minimum=0.01
)
# A delivery being sent is leased this long: a worker killed while sending leaves it due again.
WEBHOOK_LEASE_SECONDS = env_float("WEBHOOK_LEASE_SECONDS", default=60, minimum=0.01)
# The beat's sweep fans out and sends what is due this often (a commit's own kick is at once).
WEBHOOK_SWEEP_SECONDS = env_float("WEBHOOK_SWEEP_SECONDS", default=10, minimum=0.1)

# Email: EMAIL_URL as django-environ reads it (smtp+tls://user:password@host:587, consolemail://
# …); by default the console backend prints every email. Apportionment emails go in batches of
# EMAIL_BATCH over one connection; a batch is leased EMAIL_LEASE_SECONDS while it is sent.
_EMAIL = env.email_url("EMAIL_URL", default="consolemail://")
_EMAIL_OPTIONS = {
    option: _EMAIL[key]
    for key, option in (
        ("EMAIL_HOST", "host"),
        ("EMAIL_PORT", "port"),
        ("EMAIL_HOST_USER", "username"),
        ("EMAIL_HOST_PASSWORD", "password"),
        ("EMAIL_USE_TLS", "use_tls"),
        ("EMAIL_USE_SSL", "use_ssl"),
    )
    if _EMAIL.get(key)
}
_SMTP = _EMAIL["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
MAILERS = {
    "default": {
        "BACKEND": _EMAIL["EMAIL_BACKEND"],
        "OPTIONS": {**_EMAIL_OPTIONS, "timeout": 30} if _SMTP else {},
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Insurance Fund <noreply@localhost>")
EMAIL_BATCH = env_int("EMAIL_BATCH", default=200, minimum=1, maximum=10_000)
EMAIL_LEASE_SECONDS = env_float("EMAIL_LEASE_SECONDS", default=300, minimum=0.01)
EMAIL_MAX_ATTEMPTS = env_int("EMAIL_MAX_ATTEMPTS", default=8, minimum=1)
# A large cycle's emails go out through this many tasks at once (workers permitting).
EMAIL_TASKS_PER_CYCLE = env_int("EMAIL_TASKS_PER_CYCLE", default=4, minimum=1, maximum=64)
PASSWORD_RESET_PER_HOUR = env_int("PASSWORD_RESET_PER_HOUR", default=3, minimum=1)
# The address the emails link to (the portal as its users reach it).
SITE_URL = env.str("SITE_URL", default=f"http://{LOG_ORIGIN_HOST or '127.0.0.1:8000'}")

# Celery. Exactly-once settlement comes from the database (row lock, status, unique keys);
# the broker only carries the work and may deliver it twice.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
CELERY_TIMEZONE = "UTC"
# A task a lost worker had taken (acks late) goes back to the queue once it has been unacknowledged
# for visibility_timeout seconds; workers look for such tasks every interval × throttle seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", default=3600, minimum=1),
    "unacked_restore_interval": env_int("CELERY_RESTORE_INTERVAL", default=10, minimum=1),
    "unacked_restore_throttle": env_int("CELERY_RESTORE_THROTTLE", default=10, minimum=1),
}
# Celery beat keeps when each entry last ran in this file (its schedule is this module's).
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(BASE_DIR / "celerybeat-schedule")
)
_BEAT_SECONDS = env_int("CELERY_BEAT_SECONDS", default=None, minimum=1)
# How often the beat looks for settling cycles whose worker died (resend_dead_settlements):
# such a cycle is sent again within this many seconds of its worker's death.
DEAD_CLAIM_SECONDS = env_int("CELERY_DEAD_CLAIM_SECONDS", default=20, minimum=1, maximum=60)
CELERY_BEAT_SCHEDULE = {
    "close-due-cycles": {
        "task": "fund.tasks.close_due_cycles",
        # Every minute; CELERY_BEAT_SECONDS sets a shorter period (the fault tests use one second).
        "schedule": timedelta(seconds=_BEAT_SECONDS) if _BEAT_SECONDS else crontab(minute="*"),
    },
    "resend-dead-settlements": {
        "task": "fund.tasks.resend_dead_settlements",
        # A settling cycle whose worker died (its claim is free) is sent again at the next run.
        "schedule": timedelta(seconds=DEAD_CLAIM_SECONDS),
    },
    "sign-log-checkpoints": {
        "task": "fund.tasks.sign_log_checkpoints",
        # At most once a minute while records arrive (and after each settlement: the task).
        "schedule": timedelta(seconds=_BEAT_SECONDS) if _BEAT_SECONDS else crontab(minute="*"),
    },
    "fan-out-events": {
        "task": "fund.tasks.fan_out_events",
        # Catches up whatever a commit's own kick missed (a broker outage, a killed worker) and
        # the retries that fall due.
        "schedule": timedelta(seconds=WEBHOOK_SWEEP_SECONDS),
    },
    "prune-idempotency-keys": {
        "task": "fund.tasks.prune_idempotency_keys",
        "schedule": crontab(minute=17),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
