# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create or update .venv idempotently from the pinned constraints.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.difflab-installed
# pytest-xdist processes for `make test`, one torch thread each (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: demo test venv lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,ray]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/difflab demo

# The report tests open pages in headless Chromium: Debian's browser and its driver, installed when missing (CI runs
# as root on Debian). Without them (no root, no apt) those tests skip locally and fail in CI.
test: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "warning: could not install chromium and chromium-driver; the browser tests will be skipped"
	$(PY) -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo-out .pytest_cache
