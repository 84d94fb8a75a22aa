# Two commands do all the set-up on a fresh machine (Python 3.11 + make):
#   make demo   -> venv + lock + embedded Airflow/MLflow/lake, then the example pipeline end to end
#   make test   -> lint (ruff + the docs site), types (mypy) and the whole pytest suite
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
LOCAL   := $(CURDIR)/.local

# The embedded default: Airflow on SQLite + LocalExecutor, MLflow on SQLite, the lake on local disk.
export MLOPS_HOME := $(CURDIR)
export AIRFLOW_HOME ?= $(LOCAL)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR ?= LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION ?= True

.PHONY: install lock browser observability emulators demo after-demo test test-fast test-stack test-clouds test-packaging test-lower-bounds lint docs typecheck airflow mlflow-ui bench bench-quick clean

# The venv holds the dev lock (the runtime lock + test tools); the image holds requirements.txt only.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements-dev.txt
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Rebuild both locks (Python 3.11): the runtime one, then the dev one constrained by it.
# Existing pins are kept unless requirements*.in ask for something else (uv prefers them).
lock:
	test -x $(BIN)/uv || { $(PY) -m venv $(VENV) && $(BIN)/python -m pip install -q uv==0.13.8; }
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.txt
	$(BIN)/uv pip compile requirements-dev.in -c requirements.txt --python-version 3.11 -o requirements-dev.txt

demo: install
	$(BIN)/python -m mlops_dev.demo

lint: install docs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The docs site (mkdocs.yml, docs/) built with --strict (a broken link or nav entry fails) into
# .local/site (never committed), and docs/reference.md checked against the JSON Schema it is
# generated from (python docs/gen_reference.py rewrites it). lint runs it, so make test does.
# NO_MKDOCS_2_WARNING only silences mkdocs-material's banner about its successor.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -f mkdocs.yml -d $(LOCAL)/site
	$(BIN)/python docs/gen_reference.py --check

typecheck: install
	$(BIN)/mypy

# Debian's chromium for the UI test (Playwright drives it; no browser is ever downloaded).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Debian's Prometheus (with promtool) and Pushgateway: the metrics tests run the real servers.
observability:
	@command -v promtool >/dev/null && command -v prometheus-pushgateway >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway; }

# Azurite (Azure Blob/ADLS emulator) from npm; moto and gcp-storage-emulator come with the lock.
AZURITE := $(LOCAL)/azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	npm install --prefix $(LOCAL)/azurite --no-audit --no-fund azurite@3.37.0

emulators: install $(AZURITE)

# The whole suite in two runs. The tiers whose tests stand alone (per-test tmp dirs, free ports)
# run on PYTEST_WORKERS pytest-xdist workers, in random order (pytest-randomly; a failure prints
# the seed: rerun with -p randomly --randomly-seed=N); then the tiers that start servers once per
# session or module, or race real processes (emulator, faults, scheduler, stack), run serially in
# file order. Both runs always run; the recipe fails if either failed. Each prints the 25 slowest
# tests and the per-tier times.
PYTEST_WORKERS ?= 2
PARALLEL_TIERS := unit or dags or contract or integration
# --dist loadfile: a module's tests go to one worker, so its module-scoped fixtures (a trained
# champion, an SMTP server) are built once, not once per worker (with the default --dist load
# both workers built them: 2 workers took as long as 1 on the fixture-heavy unit modules).
PYTEST_PARALLEL = $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -p randomly --durations=25
PYTEST_SERIAL = $(BIN)/pytest --durations=25

# DagBag, unit, dag.test() integration, cloud contract tests, the emulator tier (moto,
# gcp-storage-emulator, Azurite), the faults tier, the scheduler tier and the team-stack tier (real
# Airflow services, Celery on Redis, MLflow server; PostgreSQL at 127.0.0.1:5432).
# Then the distribution (tests/packaging: the wheel in clean venvs next to two Airflow releases).
test: lint typecheck browser observability emulators
	rc=0; \
	$(PYTEST_PARALLEL) -m "$(PARALLEL_TIERS)" || rc=$$?; \
	$(PYTEST_SERIAL) -m "not ($(PARALLEL_TIERS)) and not packaging" || rc=$$?; \
	$(PYTEST_SERIAL) -m packaging || rc=$$?; \
	exit $$rc

# Everything but the tiers that start servers (no PostgreSQL, Redis or browser needed).
test-fast: lint typecheck observability
	rc=0; \
	$(PYTEST_PARALLEL) -m "$(PARALLEL_TIERS)" || rc=$$?; \
	$(PYTEST_SERIAL) -m "not ($(PARALLEL_TIERS)) and not scheduler and not stack and not emulator and not packaging" || rc=$$?; \
	exit $$rc

# Only the cloud tiers: contract tests and the lake on the emulators.
test-clouds: emulators
	$(BIN)/pytest -m "contract or emulator"

# Only the distribution: build the sdist and wheel, twine check, then install the wheel without the
# lock into clean venvs next to the lowest supported and the newest Airflow 3 and reach a champion
# from a user's folder (tests/packaging; docs/install.md). uv's cache makes a re-run fast.
test-packaging: install
	$(BIN)/pytest -m packaging

# The oldest version of every dependency pyproject.toml allows (its `>=` floors as constraints, and
# uv's lowest-direct resolution), every extra included, into a clean venv under .local/lower-bounds;
# the test tools are resolved next to them; then the unit tier runs there (docs/install.md).
LOWER := $(LOCAL)/lower-bounds
test-lower-bounds: install
	rm -rf $(LOWER) && mkdir -p $(LOWER)
	$(BIN)/python tests/packaging/floors.py pyproject.toml > $(LOWER)/floors.txt
	$(BIN)/uv pip compile -q pyproject.toml --all-extras --resolution lowest-direct -c $(LOWER)/floors.txt \
		--python-version 3.11 -o $(LOWER)/lowest.txt
	grep -v '^-r ' requirements-dev.in > $(LOWER)/tools.in
	$(BIN)/uv pip compile -q $(LOWER)/tools.in -c $(LOWER)/lowest.txt --python-version 3.11 -o $(LOWER)/tools.txt
	$(BIN)/uv venv -q -p $(PY) $(LOWER)/venv
	$(BIN)/uv pip install -q -p $(LOWER)/venv/bin/python -r $(LOWER)/lowest.txt -r $(LOWER)/tools.txt
	$(BIN)/uv pip install -q -p $(LOWER)/venv/bin/python --no-deps -e .
	$(LOWER)/venv/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -m unit

# Only the team-stack tier (PostgreSQL + Redis + Celery + MLflow server + Chromium).
test-stack: install browser observability
	$(BIN)/pytest -m stack

# `airflow standalone` starts its services as subprocesses named `airflow`, found on PATH: the venv's
# bin goes first. The UI listens on loopback only, and the LocalExecutor gets two worker processes
# per core (Airflow's default is 32, whatever the machine).
AIRFLOW_PORT ?= 8080
airflow: install
	@echo "Airflow UI on http://127.0.0.1:$(AIRFLOW_PORT) (login: admin, password printed below / in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	PATH="$(CURDIR)/$(BIN):$$PATH" \
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__API__BASE_URL=http://127.0.0.1:$(AIRFLOW_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	AIRFLOW__CORE__PARALLELISM=$$(( $$(nproc) * 2 )) \
	$(BIN)/airflow standalone

# What a new user does next: `make airflow` from a plain shell on the demo's state, then the UI in
# Chromium (no failed run, the Models view, the assets). .ci/run runs it right after `make demo`.
after-demo: install browser
	MLOPS_AFTER_DEMO=1 $(BIN)/pytest -p no:randomly tests/stack/test_after_demo.py

MLFLOW_PORT ?= 5000
mlflow-ui: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow ui --backend-store-uri sqlite:///$(LOCAL)/mlflow/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

# Full figures (manual; about an hour here): the README quotes them with the date.
bench: install
	$(BIN)/python benchmarks/parse.py
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/decay.py
	$(BIN)/python benchmarks/lifecycle.py

# Small sizes, one repeat: CI runs it so a benchmark cannot rot (fails on an error or a wrong result).
bench-quick: install
	$(BIN)/python benchmarks/parse.py --n 5 --repeats 1 --scale 5,10
	$(BIN)/python benchmarks/drift.py --rows 20000 --scales 10000
	$(BIN)/python benchmarks/memory.py --quick
	$(BIN)/python benchmarks/decay.py
	$(BIN)/python benchmarks/lifecycle.py --quick

clean:
	rm -rf $(LOCAL)
