# The two commands of README.md: `make run` and `make test`. Each does its own set-up.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m crm_project.devenv run

# The admin's browser tests drive Debian's chromium through Playwright (pinned in the dev extras);
# Playwright's own browser download is never used.
CHROMIUM := /usr/lib/chromium/chromium

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "chromium missing at $(CHROMIUM) and no apt-get: install Chromium"; exit 1; }
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji

# html-validate checks the compiled HTML of the email designs (tests/campaigns/test_design_html.py);
# test-only, pinned in tests/html/package-lock.json, never used at run time.
HTML_VALIDATE := tests/html/node_modules/.bin/html-validate

$(HTML_VALIDATE): tests/html/package.json tests/html/package-lock.json
	@command -v npm >/dev/null || { echo "npm missing: install Node.js >= 20 for the HTML checks of email designs"; exit 1; }
	cd tests/html && npm ci --no-audit --no-fund
	touch $(HTML_VALIDATE)

test: $(STAMP) $(CHROMIUM) $(HTML_VALIDATE)
	$(PY) -m crm_project.devenv test $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m crm_project.devenv bench $(ARGS)
