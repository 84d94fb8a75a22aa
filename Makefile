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
# Python keeps the bytecode it compiles (__pycache__, git-ignored): with PYTHONDONTWRITEBYTECODE set
# (some machines and images set it) every process compiled every module it imported again, Airflow's
# and MLflow's included: 18 % of the standalone tiers' CPU (py-spy), more for the servers' processes
unexport PYTHONDONTWRITEBYTECODE
# `mlflow ui`/`mlflow server` would also start MLflow's GenAI job runner (five more processes):
# the package submits no MLflow jobs
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION ?= false

.PHONY: install lock browser observability ci-tools emulators demo after-demo test test-prerequisites test-standalone test-servers test-packaging test-lower-bounds test-fast test-nannyml test-stack test-clouds lint docs typecheck airflow mlflow-ui bench bench-quick bench-quick-lifecycle bench-quick-others clean

# The venv holds the dev lock (the runtime lock + test tools); the image holds requirements.txt only.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml tools/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements-dev.txt
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e . -e tools
	touch $@

install: $(VENV)/.installed

# Rebuild both locks (Python 3.11): the runtime one, then the dev one constrained by it.
# Existing pins are kept unless requirements*.in ask for something else (uv prefers them).
lock:
	test -x $(BIN)/uv || { $(PY) -m venv $(VENV) && $(BIN)/python -m pip install -q uv==0.13.9; }
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.txt
	$(BIN)/uv pip compile requirements-dev.in -c requirements.txt --python-version 3.11 -o requirements-dev.txt

demo: install
	$(BIN)/python -m mlops_dev.demo

lint: install docs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

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

# Debian's Prometheus (with promtool), Pushgateway and Alertmanager: the metrics and alert tests
# run the real servers.
observability:
	@command -v promtool >/dev/null && command -v prometheus-pushgateway >/dev/null && command -v prometheus-alertmanager >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway prometheus-alertmanager; }

# Debian's AWS CLI: the GitHub Actions template test runs the MWAA deploy's aws commands with it
# (S3 on a moto server); a pip awscli would pin its own botocore against the lock's.
ci-tools:
	@test -x /usr/bin/aws || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends awscli; }

# Azurite (Azure Blob/ADLS emulator) from npm; moto and gcp-storage-emulator come with the lock.
AZURITE := $(LOCAL)/azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	npm install --prefix $(LOCAL)/azurite --no-audit --no-fund azurite@3.37.0

emulators: install $(AZURITE)

# The whole suite in two runs. The tiers whose tests stand alone (per-test tmp dirs, free ports)
# run on PYTEST_WORKERS pytest-xdist workers, in random order (pytest-randomly; a failure prints
# the seed: rerun with -p randomly --randomly-seed=N); then the tiers that start servers once per
# session or module, or race real processes (emulator, faults, scheduler, stack), run in file
# order, a file per worker (SERVER_WORKERS): every server they start takes a free port, every
# PostgreSQL database a random name, so files run side by side. Both runs always run; the recipe
# fails if either failed. Each prints the 25 slowest tests and the per-tier times.
PYTEST_WORKERS ?= 2
PARALLEL_TIERS := unit or dags or contract or integration
SERVER_TIERS := emulator or faults or scheduler or stack
# Two workers: the two longest files (scheduler, stack) run apart, the shorter ones fill in. Three
# were tried beside the demo and bench-quick on a machine shared at load 30-40: servers then missed
# their start deadlines (MLflow not up in 120 s), so two. SERVER_WORKERS=1 is the old serial run.
SERVER_WORKERS ?= 2
# --dist loadfile: a module's tests go to one worker, so its module-scoped fixtures (a trained
# champion, an SMTP server, an Airflow stack) are built once, not once per worker (with the
# default --dist load both workers built them: 2 workers took as long as 1 on the fixture-heavy
# unit modules); the server tiers' modules also run their tests in file order (they build on each
# other's state). --no-loadscope-reorder: the files in collection order, where tests/conftest.py puts
# the longest first (xdist's default, most tests first, started the team stack last).
PYTEST_PARALLEL = $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -p randomly --durations=25
PYTEST_SERVERS = $(BIN)/pytest -n $(SERVER_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# DagBag, unit, dag.test() integration, cloud contract tests, the emulator tier (moto,
# gcp-storage-emulator, Azurite), the faults tier, the scheduler tier and the team-stack tier (real
# Airflow services, Celery on Redis, MLflow server; PostgreSQL at 127.0.0.1:5432).
# Lint, types and the machine's servers (apt-get, npm) side by side (one make: install runs once),
# then the standalone tiers, then the server tiers. TEST_STANDALONE_DONE=FILE: touched when the
# standalone tiers end, so .ci/run starts the demo and bench-quick beside the server tiers. The
# distribution (tests/packaging: the wheel in clean venvs next to two Airflow releases; mostly
# network and disk) runs beside the server tiers.
test: install
	rc=0; \
	$(MAKE) --no-print-directory -j3 --output-sync=target lint typecheck test-prerequisites || rc=$$?; \
	$(MAKE) --no-print-directory test-standalone || rc=$$?; \
	if [ -n "$(TEST_STANDALONE_DONE)" ]; then touch "$(TEST_STANDALONE_DONE)"; fi; \
	$(MAKE) --no-print-directory -j2 --output-sync=target test-servers test-packaging || rc=$$?; \
	exit $$rc

# apt-get (chromium, prometheus, awscli) and npm (Azurite) one after another: apt-get calls never race.
test-prerequisites: install
	$(MAKE) --no-print-directory -j1 browser observability ci-tools emulators

# The two halves of `make test` (.ci/run runs them, each timed; the second next to the demo).
test-standalone: install observability
	$(PYTEST_PARALLEL) -m "$(PARALLEL_TIERS)"

test-servers: install browser observability emulators
	$(PYTEST_SERVERS) -m "$(SERVER_TIERS)"

# Everything but the tiers that start servers (no PostgreSQL, Redis or browser needed).
test-fast: lint typecheck observability ci-tools
	rc=0; \
	$(PYTEST_PARALLEL) -m "$(PARALLEL_TIERS)" || rc=$$?; \
	$(PYTEST_SERVERS) -m "not ($(PARALLEL_TIERS)) and not scheduler and not stack and not emulator and not packaging and not dev" || rc=$$?; \
	exit $$rc

# Only the cloud tiers: contract tests and the lake on the emulators.
test-clouds: emulators
	$(BIN)/pytest -m "contract or emulator"

# Only the distribution: build the sdist and wheel, twine check, then install the wheel without the
# lock into clean venvs next to the lowest supported and the newest Airflow 3 and reach a champion
# from a user's folder (tests/packaging; docs/install.md). uv's cache makes a re-run fast.
test-packaging: install
	$(BIN)/pytest -m packaging --durations=25

# The oldest version of every dependency pyproject.toml allows (its `>=` floors as constraints, and
# uv's lowest-direct resolution), every extra included, into a clean venv under .local/lower-bounds;
# the test tools are resolved next to them; then the unit tier runs there (docs/install.md).
LOWER := $(LOCAL)/lower-bounds
test-lower-bounds: install
	rm -rf $(LOWER) && mkdir -p $(LOWER)
	$(BIN)/python tests/packaging/floors.py pyproject.toml > $(LOWER)/floors.txt
	$(BIN)/uv pip compile -q pyproject.toml --all-extras --resolution lowest-direct -c $(LOWER)/floors.txt \
		-c tests/packaging/lower-bounds-caps.txt \
		--python-version 3.11 -o $(LOWER)/lowest.txt
	grep -v '^-r ' requirements-dev.in > $(LOWER)/tools.in
	$(BIN)/uv pip compile -q $(LOWER)/tools.in -c $(LOWER)/lowest.txt --python-version 3.11 -o $(LOWER)/tools.txt
	$(BIN)/uv venv -q -p $(PY) $(LOWER)/venv
	$(BIN)/uv pip install -q -p $(LOWER)/venv/bin/python -r $(LOWER)/lowest.txt -r $(LOWER)/tools.txt
	$(BIN)/uv pip install -q -p $(LOWER)/venv/bin/python --no-deps -e . -e tools
	$(LOWER)/venv/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -m unit

# Development only, never in `make test`: our performance estimate (CBPE, mlops_core.monitor.estimate)
# against NannyML's on the same seeded data. nannyml 0.13.1 does not fit the lock (lightgbm < 4.6),
# so the test makes its own venv under .local/nannyml with uv (needs the package index once).
test-nannyml: install
	$(BIN)/pytest -m dev tests/dev/test_nannyml.py -s

# Only the team-stack tier (PostgreSQL + Redis + Celery + MLflow server + Chromium).
test-stack: install browser observability
	$(BIN)/pytest -m stack

# `airflow standalone` starts its services as subprocesses named `airflow`, found on PATH: the venv's
# bin goes first. The UI listens on loopback only, and the LocalExecutor gets two worker processes
# per core (Airflow's default is 32, whatever the machine), forked from a forkserver that preloaded
# the heavy libraries (mlops_airflow.warm: a task starts without importing them; docs/benchmarks.md).
AIRFLOW_PORT ?= 8080
airflow: install
	@echo "Airflow UI on http://127.0.0.1:$(AIRFLOW_PORT) (login: admin, password printed below / in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	PATH="$(CURDIR)/$(BIN):$$PATH" \
	AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__API__BASE_URL=http://127.0.0.1:$(AIRFLOW_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	AIRFLOW__CORE__PARALLELISM=$$(( $$(nproc) * 2 )) \
	AIRFLOW__SCHEDULER__MP_START_METHOD=forkserver AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=mlops_airflow.warm \
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
	$(BIN)/python benchmarks/estimate.py
	$(BIN)/python benchmarks/sequential.py
	$(BIN)/python benchmarks/lifecycle.py

# Small sizes, one repeat: CI runs it so a benchmark cannot rot (fails on an error or a wrong result).
# Each code path and each correctness check once; nothing here measures anything worth quoting, so
# the longest, the lifecycle benchmark, runs beside the four others (run in turn), each line of
# benchmarks printed whole when it ends (--output-sync).
bench-quick: install
	$(MAKE) --no-print-directory -j2 --output-sync=target bench-quick-lifecycle bench-quick-others

bench-quick-lifecycle:
	$(BIN)/python benchmarks/lifecycle.py --quick

bench-quick-others:
	$(BIN)/python benchmarks/parse.py --n 5 --repeats 1 --scale 5
	$(BIN)/python benchmarks/drift.py --quick
	$(BIN)/python benchmarks/memory.py --quick
	$(BIN)/python benchmarks/decay.py
	$(BIN)/python benchmarks/estimate.py --quick
	$(BIN)/python benchmarks/sequential.py --quick

clean:
	rm -rf $(LOCAL)
