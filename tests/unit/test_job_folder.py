"""A remote job (training or a search trial) re-checks its job folder like a pipeline YAML
(issue 23, item 5): the folder lives in the lake, which more than the worker can write."""

from __future__ import annotations

import json

import pytest

from mlops_core.base import settings
from mlops_core.data import filesystems, storage
from mlops_core.model import remote
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"


@pytest.fixture
def job(local_dir) -> remote.JobRequest:
    spec = example_spec()
    lake = settings.lake_root()
    raw_uri = storage.partition_uri(lake, spec.name, "raw", DS)
    return remote.prepare(spec, raw_uri, lake, DS, {"airflow.dag_id": "d"}, 1, run_key="d/r")


def _edit(job: remote.JobRequest, name: str, change) -> None:
    fs, base = filesystems.filesystem(job.folder)
    data = json.loads(fs.cat_file(f"{base}/{name}"))
    change(data)
    fs.pipe(f"{base}/{name}", json.dumps(data).encode())


def test_the_folder_prepare_wrote_is_accepted(job):
    spec = remote.job_spec(job.folder)
    assert remote.job_request(job.folder, spec) == job


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["source"].update(
                uri="${MLOPS_LANDING}/x/${MLOPS_.:-${AIRFLOW__CORE__FERNET_KEY}}.csv"
            ),
            "source.uri: .*no nesting",
        ),
        (
            lambda d: (
                d.update(env=["AIRFLOW__CORE__FERNET_KEY"])
                or d["source"].update(uri="${MLOPS_LANDING}/${AIRFLOW__CORE__FERNET_KEY}.csv")
            ),
            "looks like a credential",
        ),
        (lambda d: d["source"].update(uri="${MLOPS_LANDING}/${HOME}/x.csv"), r"\$\{HOME\} is not a variable"),
        (lambda d: d["model"].update(family="os:system"), "model.family"),
        (lambda d: d.update(extra_key=1), "unknown field"),
    ],
)
def test_a_tampered_spec_json_is_refused_like_a_yaml(job, change, message):
    _edit(job, "spec.json", change)
    with pytest.raises(remote.JobFolderError, match=message):
        remote.job_spec(job.folder)


def test_a_spec_json_over_the_yaml_size_cap_is_refused(job):
    fs, base = filesystems.filesystem(job.folder)
    fs.pipe(f"{base}/spec.json", fs.cat_file(f"{base}/spec.json") + b" " * (300 * 1024))
    with pytest.raises(remote.JobFolderError, match="at most 262144"):
        remote.job_spec(job.folder)


def test_a_deeply_nested_spec_json_is_refused(job):
    fs, base = filesystems.filesystem(job.folder)
    fs.pipe(f"{base}/spec.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(remote.JobFolderError, match="not a JSON spec"):
        remote.job_spec(job.folder)


@pytest.mark.parametrize(
    "raw_uri",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "{lake}/other_pipeline/raw/ds=2026-01-31",
        "{lake}/{name}/../other_pipeline/raw/ds=2026-01-31",
        "{lake}/{name}/raw/../../other_pipeline/raw",
        "${{MLOPS_LANDING}}/{name}/data.csv",
        "${{MLOPS_LAKE}}/{name}/raw/ds=2026-01-31",
        "{lake}/{name}x/raw/ds=2026-01-31",
    ],
)
def test_a_raw_uri_outside_the_pipelines_lake_prefix_is_refused(job, raw_uri):
    spec = remote.job_spec(job.folder)
    hostile = raw_uri.format(lake=job.lake_root, name=spec.name)
    _edit(job, "request.json", lambda d: d.update(raw_uri=hostile))
    with pytest.raises(remote.JobFolderError, match="outside the pipeline's own lake prefix"):
        remote.job_request(job.folder, spec)


def test_a_moved_lake_root_cannot_widen_the_prefix(job):
    spec = remote.job_spec(job.folder)
    _edit(job, "request.json", lambda d: d.update(lake_root="file:///", raw_uri="file:///etc/passwd"))
    with pytest.raises(remote.JobFolderError, match="do not describe the job folder"):
        remote.job_request(job.folder, spec)


@pytest.mark.parametrize(
    "search",
    [
        {"best_params": {"n_jobs": -1}, "best_value": 0.9, "metric": "roc_auc"},
        {"best_params": {"__class__": "os.system"}, "best_value": 0.9, "metric": "roc_auc"},
        {"best_value": 0.9},
    ],
)
def test_a_platform_searchs_params_go_through_the_params_allow_list(job, search):
    spec = remote.job_spec(job.folder)
    _edit(job, "request.json", lambda d: d.update(search=search))
    with pytest.raises(remote.JobFolderError, match="search.best_params"):
        remote.job_request(job.folder, spec)


def test_an_unknown_request_field_is_refused(job):
    spec = remote.job_spec(job.folder)
    _edit(job, "request.json", lambda d: d.update(command=["sh", "-c", "id"]))
    with pytest.raises(remote.JobFolderError, match="not a job request"):
        remote.job_request(job.folder, spec)


def test_the_job_refuses_before_training(job):
    _edit(job, "request.json", lambda d: d.update(raw_uri="file:///etc/passwd"))
    with pytest.raises(remote.JobFolderError):
        remote.run(job.folder)
    fs, base = filesystems.filesystem(job.folder)
    assert not fs.exists(f"{base}/result.json")
