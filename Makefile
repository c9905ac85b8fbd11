# Two commands on a fresh machine:
#   make demo   set up, import the Flipkart catalog, load the demo logins (fixtures/), index, serve on http://localhost:8000
#   make test   set up and run the whole test suite (starts its own Redis and Celery worker)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CATALOG_DIR ?= ../shared/data
PORT ?= 8000
# The demo listens on this machine only; HOST=0.0.0.0 opens it to the network (set ALLOWED_HOSTS too).
HOST ?= 127.0.0.1
# DEBUG off, static files and photos served, a SECRET_KEY kept in var/: see config/settings/demo.py.
DEMO_SETTINGS := config.settings.demo

.PHONY: setup demo serve lint test test-fast bench bench-scale bench-text-query bench-load bench-index redis-server postgresql chromium test-tools clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# The concurrency tests (tests/attacks/test_writes_under_load.py) run their own PostgreSQL cluster
# (initdb into a temporary folder, pg_ctl on a free loopback port), as well as on SQLite.
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# Browser tests drive Debian's Chromium through Playwright (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The accessibility audit the browser tests inject (axe-core, pinned in test-tools/package.json).
test-tools: test-tools/node_modules/axe-core/axe.min.js

test-tools/node_modules/axe-core/axe.min.js: test-tools/package.json test-tools/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	cd test-tools && npm ci --no-audit --no-fund --silent
	touch $@

demo: setup
	$(PY) manage.py migrate --noinput
	CATALOG_DIR=$(CATALOG_DIR) $(PY) manage.py import_catalog flipkart
	$(PY) manage.py load_demo --base-url http://localhost:$(PORT)
	$(PY) manage.py search_status
	@echo "Storefront: http://localhost:$(PORT)/   admin: http://localhost:$(PORT)/admin/"
	@$(PY) manage.py load_demo --print-only --base-url http://localhost:$(PORT)
	DJANGO_SETTINGS_MODULE=$(DEMO_SETTINGS) $(PY) manage.py runserver $(HOST):$(PORT)

serve: setup
	DJANGO_SETTINGS_MODULE=$(DEMO_SETTINGS) $(PY) manage.py runserver $(HOST):$(PORT)

# Lint and import order (ruff), then the architecture contracts (import-linter): see pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: setup redis-server postgresql chromium test-tools lint
	CATALOG_DIR=$(CATALOG_DIR) $(PY) -m pytest

test-fast: setup lint
	CATALOG_DIR=$(CATALOG_DIR) $(PY) -m pytest -m "not slow and not celery"

bench: setup
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	mkdir -p var/bench
	CATALOG_DIR=$(CATALOG_DIR) $(PY) bench/run.py --json var/bench/results.json
	CATALOG_DIR=$(CATALOG_DIR) $(PY) bench/image_encoder.py --json var/bench/image_encoder.json
	CATALOG_DIR=$(CATALOG_DIR) $(PY) bench/text_encoder.py --json var/bench/text_encoder.json

# The scale benchmark (docs/scaling.md): 1k-1M products beside LanceDB; each size is built once
# into var/bench/scale-<n>/ and reused (a 1M build takes tens of minutes on two cores).
SCALE_SIZES ?= 1k,10k,100k,1m
SCALE_LANCEDB ?= 1k,10k,100k
bench-scale: setup
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	mkdir -p var/bench
	CATALOG_DIR=$(CATALOG_DIR) nice -n 10 $(PY) bench/scale.py --sizes $(SCALE_SIZES) --lancedb $(SCALE_LANCEDB) --readers 1,2,4 \
		--json var/bench/scale.json --markdown var/bench/scale.md

# One text query end to end at 100k products, every encoder (MiniLM + e5) and ranking stage on,
# beside BM25 alone (bench/text_query.py); the index is built once into var/bench/text-query-<n>/.
bench-text-query: setup
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	mkdir -p var/bench
	CATALOG_DIR=$(CATALOG_DIR) $(PY) bench/text_query.py --products 100000 --queries 200 \
		--json var/bench/text-query.json --markdown var/bench/text-query.md

# Load on gunicorn with the production settings (bench/load.py: before/after configurations, 8 and
# 32 clients, words then photos, py-spy profiles) and indexing with photos through 1 and 2 Celery
# workers (bench/index_workers.py). The Flipkart catalog the load bench serves is built once into
# var/bench/load-catalog/ (minutes) and reused.
LOAD_CLIENTS ?= 8,32
INDEX_PRODUCTS ?= 300
bench-load: setup redis-server
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	mkdir -p var/bench
	CATALOG_DIR=$(CATALOG_DIR) nice -n 10 $(PY) bench/load.py --clients $(LOAD_CLIENTS) --profile var/bench/profiles \
		--json var/bench/load.json --markdown var/bench/load.md

bench-index: setup redis-server
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	mkdir -p var/bench
	CATALOG_DIR=$(CATALOG_DIR) nice -n 10 $(PY) bench/index_workers.py --products $(INDEX_PRODUCTS) --workers 1,2 \
		--json var/bench/index_workers.json --markdown var/bench/index_workers.md

clean:
	rm -rf var .pytest_cache artifacts test-tools/node_modules
