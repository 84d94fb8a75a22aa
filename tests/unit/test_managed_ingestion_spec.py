"""``ingestion:`` in the YAML: what parses, what each job is asked to do, where the task goes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mlops_core.spec import SpecError
from tests.helpers import REPO, example_spec

pytestmark = pytest.mark.unit

GLUE = {"job_name": "orders-export", "arguments": {"--output": "${MLOPS_LANDING}/orders/ds={ds}/"}}
FLOW = {"template": "gs://acme-templates/flex/orders.json", "parameters": {"output": "gs://acme/{ds}"}}
ADF = {"pipeline_name": "CopyOrders", "resource_group_name": "rg-data", "factory_name": "acme-adf"}


@pytest.mark.parametrize(
    ("ingestion", "message"),
    [
        ({}, r"exactly one of glue, dataflow or data_factory is needed \(got none\)"),
        ({"glue": GLUE, "data_factory": ADF}, r"exactly one .* \(got glue, data_factory\)"),
        ({"glue": {**GLUE, "arguments": {"--ds": "x"}}}, r"\['--ds'\] are set by the package"),
        ({"data_factory": {**ADF, "parameters": {"mlops_run_key": "x"}}}, "mlops_run_key"),
        ({"glue": {**GLUE, "arguments": {"--q": "{{ var.value.secret }}"}}}, "Jinja markup is not evaluated"),
        ({"glue": {**GLUE, "arguments": {"--q": "{% for x in y %}"}}}, "Jinja markup"),
        ({"glue": {**GLUE, "arguments": {"bad name": "x"}}}, "not a plain identifier"),
        ({"dataflow": {**FLOW, "template": "https://example.com/t.json"}}, "flex template's spec file"),
        ({"dataflow": {**FLOW, "template": "gs://acme-templates/../t.json"}}, "flex template's spec file"),
        ({"glue": {**GLUE, "job_name": "bad/name"}}, "job_name"),
        ({"glue": GLUE, "dags": ["training", "nightly"]}, "dags"),
        ({"glue": GLUE, "unknown": 1}, "unknown field"),
    ],
)
def test_bad_ingestion_sections_are_refused_at_parse(ingestion: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        example_spec(ingestion=ingestion)


def test_a_parameter_cannot_read_a_credential() -> None:
    with pytest.raises(SpecError, match="looks like a credential"):
        example_spec(ingestion={"glue": {**GLUE, "arguments": {"--key": "${AWS_SECRET_ACCESS_KEY}"}}})


def test_each_job_gets_the_day_and_expanded_roots() -> None:
    from mlops_core.data.ingestion import job_parameters
    from mlops_core.spec import profiles as clouds

    profile = clouds.CloudProfile(
        name="aws",
        lake="s3://l/lake",
        landing="s3://l/landing",
        conn_id=None,
        training_backend="in_worker",
        deploy_target="local",
        monitoring_export="none",
    )
    glue = example_spec(ingestion={"glue": {**GLUE, "arguments": {**GLUE["arguments"], "workers": 4}}})
    with clouds.using(profile):
        args = job_parameters(glue.ingestion, "2026-01-31", "k")
    assert args == {
        "--output": "s3://l/landing/orders/ds=2026-01-31/",
        "--workers": "4",
        "--ds": "2026-01-31",
    }

    flow = example_spec(ingestion={"dataflow": FLOW, "ds_parameter": "day"})
    assert job_parameters(flow.ingestion, "2026-01-31", "k") == {
        "output": "gs://acme/2026-01-31",
        "day": "2026-01-31",
    }

    adf = example_spec(ingestion={"data_factory": {**ADF, "parameters": {"full": True, "n": 3}}})
    assert job_parameters(adf.ingestion, "2026-01-31", "dag:run:2026-01-31") == {
        "full": True,
        "n": 3,
        "ds": "2026-01-31",
        "mlops_run_key": "dag:run:2026-01-31",
    }


def test_dataflow_job_names_are_valid_stable_per_run_and_distinct_across_runs() -> None:
    from mlops_core.data.ingestion import dataflow_job_name

    valid = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
    short = example_spec(name="orders")
    long = example_spec(name="a_very_long_pipeline_name_that_goes_on_and_on_for_a_while_yes")
    names = {
        dataflow_job_name(spec, dag, run, "2026-01-31")
        for spec in (short, long)
        for dag, run in [("d_training", "manual__1"), ("d_training", "manual__2"), ("d_scoring", "manual__1")]
    }
    assert len(names) == 6 and all(valid.match(n) for n in names)
    assert dataflow_job_name(short, "d", "r", "2026-01-31") == dataflow_job_name(
        short, "d", "r", "2026-01-31"
    )


def test_the_task_runs_before_ingest_in_the_dags_listed_only() -> None:
    from mlops_airflow.builder import build_dags

    spec = example_spec(name="orders", ingestion={"glue": GLUE, "dags": ["training", "monitoring"]})
    found = {}
    for dag in build_dags(spec):
        task = dag.task_dict.get("managed_ingestion")
        found[dag.dag_id.removeprefix("orders_")] = task and sorted(task.downstream_task_ids)
    assert found == {"training": ["ingest"], "batch_scoring": None, "monitoring": ["ingest"]}


def test_a_spec_without_ingestion_imports_no_ingestion_provider_at_parse() -> None:
    code = (
        "import sys\n"
        "sys.path[:0] = ['include', 'plugins', '.']\n"
        "from tests.helpers import example_spec\n"
        "from mlops_airflow.builder import build_dags\n"
        "build_dags(example_spec())\n"
        "bad = [m for m in ('mlops_airflow.operators.ingestion', 'airflow.providers.google.cloud.hooks.dataflow',"
        " 'airflow.providers.amazon.aws.operators.glue', 'apache_beam') if m in sys.modules]\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr
