# Two commands do all the set-up on a fresh machine (Python 3.11 + make):
#   make demo   -> venv + lock + embedded Airflow/MLflow/lake, then the example pipeline end to end
#   make test   -> lint (ruff), types (mypy) and the whole pytest suite
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

.PHONY: install demo test test-fast lint typecheck airflow mlflow-ui bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements.txt
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m mlops_airflow.demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The whole suite: DagBag, unit, dag.test() integration, and the scheduler tier (real scheduler,
# dag-processor, triggerer and api-server on the machine's PostgreSQL at 127.0.0.1:5432).
test: lint typecheck
	$(BIN)/pytest

# Everything but the tiers that start servers (no PostgreSQL needed).
test-fast: lint typecheck
	$(BIN)/pytest -m "not scheduler"

airflow: install
	@echo "Airflow UI on http://localhost:8080 (login printed below / in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	$(BIN)/airflow standalone

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(LOCAL)/mlflow/mlflow.db --port 5000

bench: install
	$(BIN)/python benchmarks/parse.py
	$(BIN)/python benchmarks/drift.py

clean:
	rm -rf $(LOCAL)
