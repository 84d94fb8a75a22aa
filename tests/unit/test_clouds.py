"""Cloud profiles: one ``cloud:`` line switches a pipeline; remote training runs the same code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_core.base import settings
from mlops_core.model import remote
from mlops_core.spec import load_spec
from mlops_core.spec import profiles as clouds

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "include" / "examples"


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_cloud_examples_differ_from_the_local_one_only_by_cloud(cloud):
    from mlops_airflow.builder import build_batch_scoring_dag, build_monitoring_dag, build_training_dag

    local = load_spec(REPO / "dags" / "pipelines" / "breast_cancer.yaml")
    other = load_spec(EXAMPLES / f"breast_cancer_{cloud}.yaml")
    assert other.cloud == cloud
    assert other.model_dump(exclude={"name", "cloud"}) == local.model_dump(exclude={"name", "cloud"})
    for build in (build_training_dag, build_batch_scoring_dag, build_monitoring_dag):
        assert set(build(other).task_ids) == set(build(local).task_ids)


@pytest.mark.parametrize(
    ("cloud", "lake", "training", "target", "export"),
    [
        ("local", "file://", "in_worker", "local", "none"),
        ("aws", "s3://", "sagemaker", "sagemaker", "cloudwatch"),
        ("gcp", "gs://", "vertex", "vertex", "cloud_monitoring"),
        ("azure", "abfs://", "azureml", "azureml", "azure_monitor"),
    ],
)
def test_profiles_decide_lake_training_target_and_export(cloud, lake, training, target, export, local_dir):
    profile = clouds.resolve(cloud)
    assert profile.lake.startswith(lake) and profile.landing.startswith(lake)
    assert (profile.training_backend, profile.deploy_target, profile.monitoring_export) == (
        training,
        target,
        export,
    )
    with clouds.using(profile):
        assert settings.lake_root() == profile.lake
        assert settings.expand("${MLOPS_LANDING}/x.csv") == f"{profile.landing}/x.csv"
    assert settings.lake_root() != profile.lake or cloud == "local"


def test_profile_errors_name_the_fix(monkeypatch):
    with pytest.raises(clouds.CloudProfileError, match="cloud 'mars' has no profile"):
        clouds.resolve("mars")
    monkeypatch.setenv("MLOPS_AWS_TRAINING_BACKEND", "lambda")
    with pytest.raises(clouds.CloudProfileError, match="training_backend 'lambda' is not one of"):
        clouds.resolve("aws")
    monkeypatch.delenv("MLOPS_AWS_TRAINING_BACKEND")
    monkeypatch.delenv("MLOPS_SAGEMAKER_ROLE_ARN", raising=False)
    with pytest.raises(clouds.CloudProfileError, match="needs settings.role_arn"):
        clouds.resolve("aws").setting("role_arn")


def test_job_names_derive_from_pipeline_date_and_try():
    assert remote.job_name("breast_cancer", "2026-01-31", 1) == "mlops-breast-cancer-20260131-t1"
    assert remote.job_name("breast_cancer", "2026-01-31", 2) != remote.job_name(
        "breast_cancer", "2026-01-31", 1
    )
    long = remote.job_name("p" * 63, "2026-01-31T00:00:00", 12)
    assert len(long) <= 63 and long.endswith("-20260131-t12")


def test_job_names_are_unique_per_airflow_run():
    """A re-run of the same day (new run id, try 1) must not attach to the first run's finished job."""
    first = remote.job_name("breast_cancer", "2026-01-31", 1, "bc_training/manual__1")
    again = remote.job_name("breast_cancer", "2026-01-31", 1, "bc_training/manual__1")
    other = remote.job_name("breast_cancer", "2026-01-31", 1, "bc_training/backfill__2026-01-31")
    assert first == again and first != other
    assert re.fullmatch(r"mlops-breast-cancer-20260131-[0-9a-f]{8}-t1", first)
    long = remote.job_name("p" * 63, "2026-01-31", 12, "x/y")
    assert len(long) <= 63 and re.fullmatch(r"mlops-p+-20260131-[0-9a-f]{8}-t12", long)


def test_the_remote_entrypoint_trains_like_the_worker(landing, local_dir):
    """What a SageMaker/Vertex/Azure ML job runs, run here as a process: an MLflow run with the request's tags."""
    from mlops_core import lifecycle
    from mlops_core.runs import registry, tracking
    from tests.helpers import example_spec

    spec = example_spec(name="remote_job")
    raw = lifecycle.ingest(spec, "2026-01-31", settings.lake_root())
    req = remote.prepare(spec, raw["uri"], settings.lake_root(), "2026-01-31", {"airflow.run_id": "r1"}, 1)
    assert req.name == "mlops-remote-job-20260131-t1"
    with pytest.raises(remote.RemoteJobFailed, match="wrote no result"):
        remote.read_result(req)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "mlops_core.model.remote", req.folder],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = remote.read_result(req)
    assert json.loads(out.stdout.strip().splitlines()[-1])["run_id"] == result["run_id"]
    tracking.configure()
    tags = registry.client().get_run(result["run_id"]).data.tags
    assert tags["airflow.run_id"] == "r1" and tags["mlops.training_backend_job"] == req.name
    assert tags["mlops.raw_uri"] == raw["uri"] and tags["mlops.ds"] == "2026-01-31"
