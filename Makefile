# Insurance Fund Portal: the newcomer's two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# Django 6.1 needs Python >= 3.12. A pyenv shim answers `command -v` even when it cannot run,
# so each candidate is run and the first that reports >= 3.12 wins. `make PYTHON=/path` overrides.
PYTHON ?= $(shell for c in python3.12 python3.13 python3.14 python3 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python; do \
	"$$c" -c 'import sys; assert sys.version_info >= (3, 12); print(sys.executable)' 2>/dev/null && break; done)

.PHONY: help venv demo serve test lint format bench worker beat lock plotly-bundle clean

help:
	@echo "make demo    - install, migrate, load the demo data and serve http://$(HOST):$(PORT)"
	@echo "make test    - install and run the whole test suite (SQLite, eager Celery)"
	@echo "make lint    - ruff check and ruff format --check over the tree; template lines <= 150"
	@echo "make format  - ruff format and ruff check --fix over the tree"
	@echo "make serve   - Django's development server on http://$(HOST):$(PORT) (no demo load)"
	@echo "make bench   - settlement, ingestion, page and load benchmarks (PostgreSQL, Redis, wrk)"
	@echo "make worker  - a Celery worker against REDIS_URL"
	@echo "make beat    - Celery beat against REDIS_URL (schedule file: celerybeat-schedule)"
	@echo "make venv    - create or update .venv from requirements.lock"
	@echo "make lock    - re-resolve requirements.lock from pyproject.toml"
	@echo "make plotly-bundle - vendor plotly.js's basic bundle for the pinned plotly (needs npm)"
	@echo "make clean   - remove .venv, the demo database and signing key, beat's schedule file, collected static"
	@echo "               files, test artifacts and caches"
	@echo "Variables: HOST=$(HOST) PORT=$(PORT) PYTHON=$(PYTHON)"
	@echo "           PYTEST_ARGS='...' for make test, BENCH_ARGS='...' for make bench"

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "No Python >= 3.12 found: install one or run 'make PYTHON=/path/to/python3.12 ...'" >&2; exit 1; fi
	"$(PYTHON)" -m venv $(VENV)

$(STAMP): requirements.lock $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP)

# The demo signs its funds' log checkpoints with a key of its own, made on the first run (never
# committed: .gitignore); production reads LOG_SIGNING_KEY_FILE from its environment (README).
DEMO_KEY := log-signing.key
demo: export LOG_SIGNING_KEY_FILE := $(CURDIR)/$(DEMO_KEY)
demo: export LOG_ORIGIN_HOST := $(HOST):$(PORT)
# The demo's simulated exchange wallet receives the webhooks on this very server (127.0.0.1).
demo: export WEBHOOK_ALLOW_PRIVATE := true
demo: export SITE_URL := http://$(HOST):$(PORT)
demo: venv
	@test -f $(DEMO_KEY) || $(BIN)/python manage.py log_keygen $(HOST):$(PORT)/log --out $(DEMO_KEY) >/dev/null
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo --if-empty
	$(BIN)/python manage.py demo_banner --host $(HOST) --port $(PORT)
	$(BIN)/python manage.py serve_demo $(HOST):$(PORT)

serve: venv
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

TEMPLATE_LINE_MAX := 150

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@long=$$(find templates -name '*.html' -exec awk -v max=$(TEMPLATE_LINE_MAX) \
		'length > max { printf "%s:%d: %d characters (max %d)\n", FILENAME, FNR, length, max }' {} +); \
		if [ -n "$$long" ]; then echo "$$long"; exit 1; fi

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; } \
		|| { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

worker: venv
	$(BIN)/celery -A config worker --loglevel=info

beat: venv
	$(BIN)/celery -A config beat --loglevel=info

lock: venv
	$(BIN)/uv pip compile pyproject.toml --group dev --python-version 3.12 --generate-hashes -o requirements.lock

# plotly.js's basic bundle (scatter and bar: all the portal's charts draw) at the version the
# plotly package ships, with its brotli and gzip forms, into static/vendor/plotly. Committed, so a
# fresh machine needs no npm; run it after upgrading plotly (a test says when).
PLOTLY_JS := $(shell grep -o '^PLOTLY_JS_VERSION = "[0-9.]*"' config/settings/base.py | grep -o '[0-9.]*[0-9]')
plotly-bundle: venv
	rm -rf .plotly-pack && mkdir .plotly-pack
	cd .plotly-pack && npm pack --silent plotly.js-basic-dist-min@$(PLOTLY_JS) && tar xzf *.tgz
	cp .plotly-pack/package/plotly-basic.min.js static/vendor/plotly/plotly-basic-$(PLOTLY_JS).min.js
	cp .plotly-pack/package/LICENSE static/vendor/plotly/LICENSE
	$(BIN)/python -c "import brotli, gzip, sys; p = sys.argv[1]; d = open(p, 'rb').read(); \
		open(p + '.br', 'wb').write(brotli.compress(d, quality=11)); \
		open(p + '.gz', 'wb').write(gzip.compress(d, 9, mtime=0))" static/vendor/plotly/plotly-basic-$(PLOTLY_JS).min.js
	rm -rf .plotly-pack

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm celerybeat-schedule* staticfiles $(DEMO_KEY) \
		test-artifacts .pytest_cache .hypothesis .ruff_cache
