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

.PHONY: env browser demo test bench clean

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

test: env browser
	.venv/bin/python -m pytest -q -n 2 --dist loadfile

bench: env
	for b in bench/*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

clean:
	rm -rf .venv data
