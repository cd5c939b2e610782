"""Test settings: the same database choice as base (SQLite by default, DATABASE_URL for
PostgreSQL), fast password hashing, local-memory cache and in-process Celery."""

from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PAGE_CACHE = True  # one test process: the cached pages' refresh is tested with local memory
PAGE_VERSION_SECONDS = 0  # tests change the books behind the cache's back and read at once
CELERY_TASK_ALWAYS_EAGER = True
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Static files come from static/ through the finders, never from a collected STATIC_ROOT (whose
# absence whitenoise would warn about in every test that sends a request).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

# 4xx answers are what many tests ask for: keep them out of the output.
LOGGING["loggers"] = {"django.request": {"level": "ERROR"}}  # noqa: F405

# The tests' log signing key (a fixed test key, published with the code: never use it elsewhere).
LOG_SIGNING_KEY = "PRIVATE+KEY+testserver/log+9170cae5+AYBIQc6ZDRplqHWH5Z3UJDtMJz56geZGDt/BP1gjWb2X"
LOG_SIGNING_KEY_FILE = ""
LOG_ORIGIN_HOST = "testserver"

# The tests' webhook receivers listen on 127.0.0.1.
WEBHOOK_ALLOW_PRIVATE = True
SITE_URL = "http://testserver"
