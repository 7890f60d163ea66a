# Two commands set everything up (README): `make demo` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# The environment sets PYTHONDONTWRITEBYTECODE: without bytecode compiled at install, every run
# compiles ~3,900 modules again (seconds per command).
export UV_COMPILE_BYTECODE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: env browser demo test test-fast bench clean

# The environment: uv from PyPI if absent, then the locked packages into .venv (no Python download).
env: .venv/.synced

$(UV):
	$(PYTHON) -m pip install --user --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $$($(PYTHON) -c 'import sys; print(sys.executable)')
	@touch $@

demo: env
	.venv/bin/smallcaps demo

# Debian's chromium for the report's browser test (tests/report/test_browser.py skips without it).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: /usr/bin/chromium missing and no root apt-get: the report's browser test will be skipped"; fi

# Tests keep bytecode in __pycache__ (git ignores it): pytest rewrites the asserts of ~60 test
# modules and Python compiles the project's own, 7 of the 12 s each worker spends collecting when
# PYTHONDONTWRITEBYTECODE makes both start over every run.
PYTEST := env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m pytest

test: env browser
	$(PYTEST) -q -n 2 --dist loadfile

# The loop while working: every test but those marked slow (flows, processes that import the
# pipeline, the cases of a matrix after the first of each kind), property tests with a fifth of
# their examples (tests/helpers/matrix.py). worksteal: the files differ too much in length for
# whole files per worker to finish together.
test-fast: env
	TEST_FAST_LOOP=1 $(PYTEST) -q -m "not slow" -n 2 --dist worksteal

# Every bench once, with quick arguments (small homes, one round), to show each instrument works;
# the figures of issue 13 come from the full-size runs listed in bench/README.md.
# backfill_rss.py needs GNU time (/usr/bin/time, Debian package `time`): installed here when missing.
bench: env
	@if [ ! -x /usr/bin/time ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; \
		else echo "bench/backfill_rss.py needs /usr/bin/time: apt-get install time"; exit 1; fi; fi
	.venv/bin/python bench/fetch_yahoo.py
	.venv/bin/python bench/gate_share.py
	.venv/bin/python bench/rebuild_marts.py
	.venv/bin/python bench/publish_snapshot.py
	.venv/bin/python bench/rebuild_vs_pandas.py --sample-start 2025-06-02 --rounds 1
	.venv/bin/python bench/nightly_vs_bare.py --sample-start 2026-06-01 --rounds 1
	.venv/bin/python bench/nightly_history.py --starts 2026-06-01 2026-01-02 --rounds 1
	.venv/bin/python bench/backfill_rss.py 1y
	.venv/bin/python bench/sample_cache.py --starts 2024-01-02 --rounds 1

clean:
	rm -rf .venv data
