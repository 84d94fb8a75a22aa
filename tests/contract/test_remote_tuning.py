"""``model.search.tuner: platform`` by contract: the exact tuning-job requests on SageMaker, Vertex AI
and Azure ML, start, attach on a resumed try, wait, and the result the ``search`` task returns.

- SageMaker: the ``search`` task's real code (the amazon provider's ``SageMakerHook`` and
  ``SageMakerTrigger``) with botocore's ``Stubber`` on the hook's client: each request is checked
  against botocore's service model and against the parameters spelt out here;
- Vertex AI: the recording session of ``test_vertex`` (requests and answers held to the
  ``aiplatform v1`` discovery document);
- Azure ML: the recording session of ``test_azureml`` (bodies held to the REST models of the
  ``api-version`` the package sends).

No tuning service is emulated here; what each trial runs is proven by real processes in
``tests/unit/test_tuning.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from mlops_core import lifecycle
from mlops_core.base import settings
from mlops_core.clouds.azure import tuning as azure_tuning
from mlops_core.data import filesystems, storage
from mlops_core.model import remote, tuning
from tests.contract import azure_models
from tests.contract.test_azureml import PROFILE as AZURE
from tests.contract.test_azureml import WSID
from tests.contract.test_azureml import Recorder as AzureRecorder
from tests.contract.test_managed_ingestion import context
from tests.contract.test_vertex import LOC, PARENT, ROOT, TRAINING_IMAGE, filt
from tests.contract.test_vertex import PROFILE as GCP
from tests.contract.test_vertex import Recorder as VertexRecorder
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import SimpleNamespace

pytestmark = pytest.mark.contract

DS = "2026-01-31"
ROLE = "arn:aws:iam::123456789012:role/mlops-sagemaker"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops:latest"
SPACE = {"n_estimators": {"low": 5, "high": 60}, "max_depth": {"choices": [2, 8]}}


def spec(backend: str, cloud: str, **search: Any) -> Any:
    return example_spec(
        cloud=cloud,
        model={
            "family": "random_forest",
            "params": {"n_jobs": 1},
            "seed": 3,
            "search": {"params": SPACE, "tuner": "platform", "trials": 8, "parallel_trials": 3, **search},
        },
        training={"backend": backend},
    )


def job_request(s: Any, lake: str, tracking: str = "https://mlflow.example") -> remote.JobRequest:
    """A search's job request as ``remote.prepare`` writes it (the trials drop the MLflow URI)."""
    name = remote.job_name(s.name, DS, 1, "d/r", kind="hpo")
    return remote.JobRequest(
        name=name,
        folder=f"{lake}/{s.name}/jobs/{name}",
        raw_uri=f"{lake}/{s.name}/raw/ds={DS}",
        lake_root=lake,
        ds=DS,
        tags={"airflow.dag_id": f"{s.name}_training"},
        env={"MLFLOW_TRACKING_URI": tracking, "MLOPS_LAKE": lake},
        raw_version=1,
    )


# -- SageMaker: the search task's own code, on a stubbed client ------------------------------------


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch, landing: str) -> Iterator[SimpleNamespace]:
    """The search task of an ``aws`` pipeline over a local lake, its hook's client stubbed."""
    from types import SimpleNamespace

    import boto3
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.stub import Stubber

    from mlops_airflow.operators.search import SearchOperator

    monkeypatch.setenv("MLOPS_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("MLOPS_TRAINING_IMAGE", IMAGE)
    client = boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    monkeypatch.setattr(SageMakerHook, "get_conn", lambda self: client)
    lake = settings.lake_root()
    raw = lifecycle.ingest(example_spec(), DS, lake)["uri"]
    s = spec("sagemaker", "aws")
    op = SearchOperator(task_id="search", pipeline=s, data=raw, lake_root=lake, poll_seconds=30)
    with Stubber(client) as stub:
        yield SimpleNamespace(op=op, stub=stub, raw=raw, lake=lake, spec=s)
        stub.assert_no_pending_responses()


def expected_config(folder: str, name: str, job: str) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "cv_score"},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": 8,
                "MaxParallelTrainingJobs": 3,
                "MaxRuntimeInSeconds": 1800,
            },
            "ParameterRanges": {
                "IntegerParameterRanges": [
                    {"Name": "n_estimators", "MinValue": "5", "MaxValue": "60", "ScalingType": "Linear"}
                ],
                "CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["2", "8"]}],
            },
            "TrainingJobEarlyStoppingType": "Auto",
            "RandomSeed": 3,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "cv_score", "Regex": r"mlops_cv_score=(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)"}
                ],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://mlops-lake/lake/breast_cancer/jobs/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
            # trials need the lake and their folder, never the MLflow server
            "Environment": {
                "MLOPS_LAKE": folder.split("/breast_cancer/jobs/")[0],
                "MLOPS_JOB_FOLDER": folder,
            },
        },
        "Tags": [
            {"Key": "mlops:pipeline", "Value": "breast_cancer"},
            {"Key": "mlops:job", "Value": job},
            {"Key": "mlops:ds", "Value": DS},
        ],
    }


JOB = remote.job_name("breast_cancer", DS, 1, "orders_training/manual__2026-01-31", kind="hpo")
TUNING = tuning.tuning_job_name(JOB)


def test_sagemaker_search_creates_the_tuning_job_and_defers_on_the_providers_trigger(
    sagemaker: SimpleNamespace,
) -> None:
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.sdk.exceptions import TaskDeferred

    folder = f"{sagemaker.lake}/breast_cancer/jobs/{JOB}"
    sagemaker.stub.add_client_error(
        "describe_hyper_parameter_tuning_job",
        "ResourceNotFound",
        expected_params={"HyperParameterTuningJobName": TUNING},
    )
    sagemaker.stub.add_response(
        "create_hyper_parameter_tuning_job",
        {
            "HyperParameterTuningJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:hyper-parameter-tuning-job/{TUNING}"
        },
        expected_params=expected_config(folder, TUNING, JOB),
    )
    with pytest.raises(TaskDeferred) as deferred:
        sagemaker.op.execute(context(sagemaker.op))
    trigger = deferred.value.trigger
    assert isinstance(trigger, SageMakerTrigger)
    kwargs = trigger.serialize()[1]
    assert (kwargs["job_name"], kwargs["job_type"], kwargs["waiter_delay"]) == (TUNING, "tuning", 30)
    assert kwargs["waiter_max_attempts"] == (1800 + 600) // 30
    assert deferred.value.method_name == "search_complete"
    # the job folder holds the spec and the request the trials read, pinned to the partition version
    request = json.loads(filesystems.filesystem(folder)[0].cat_file(f"{folder}/request.json"))
    assert request["raw_version"] == storage.read_manifest(sagemaker.raw).version
    assert deferred.value.kwargs["raw_version"] == request["raw_version"]


def test_a_resumed_sagemaker_search_attaches_to_its_tuning_job(sagemaker: SimpleNamespace) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    sagemaker.stub.add_response(
        "describe_hyper_parameter_tuning_job",
        {
            "HyperParameterTuningJobName": TUNING,
            "HyperParameterTuningJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:hyper-parameter-tuning-job/{TUNING}",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Bayesian",
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 3},
            },
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": "2026-01-31T00:00:00Z",
            "TrainingJobStatusCounters": {},
            "ObjectiveStatusCounters": {},
        },
        expected_params={"HyperParameterTuningJobName": TUNING},
    )
    with pytest.raises(TaskDeferred):  # and no create: the stub holds no second response
        sagemaker.op.execute(context(sagemaker.op))


def test_search_complete_returns_the_best_trial_or_fails_with_the_platform_message(
    sagemaker: SimpleNamespace,
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    folder = f"{sagemaker.lake}/breast_cancer/jobs/{JOB}"
    fs, base = filesystems.filesystem(folder)
    fs.makedirs(f"{base}/trials", exist_ok=True)
    for ident, trees, value in (("t-1", 10, 0.91), ("t-2", 40, 0.97)):
        record = {
            "trial": ident,
            "state": "COMPLETE",
            "value": value,
            "folds": [value],
            "params": {"n_estimators": trees, "max_depth": 8},
        }
        fs.pipe(f"{base}/trials/{ident}.json", json.dumps(record).encode())
    ctx = context(sagemaker.op)
    done = sagemaker.op.search_complete(
        ctx, {"status": "success"}, folder=folder, job=TUNING, backend="sagemaker", raw_version=1
    )
    assert (done["best_trial"], done["best_params"], done["raw_version"]) == (
        "t-2",
        {"n_estimators": 40, "max_depth": 8},
        1,
    )
    assert (done["backend"], done["tuning_job"]) == ("sagemaker", TUNING)
    with pytest.raises(AirflowFailException, match=f"tuning job {TUNING} failed: .*MaxRuntime"):
        sagemaker.op.search_complete(
            ctx,
            {"status": "error", "message": "Tuning job failed: MaxRuntimeInSeconds"},
            folder=folder,
            job=TUNING,
        )
    empty = f"{sagemaker.lake}/breast_cancer/jobs/other"
    with pytest.raises(AirflowFailException, match="none of its trials wrote a complete result"):
        sagemaker.op.search_complete(ctx, {"status": "success"}, folder=empty, job=TUNING)


def test_a_local_profile_has_no_tuning_service(landing: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.search import SearchOperator

    s = spec("auto", "local")
    op = SearchOperator(task_id="search", pipeline=s, data="unused")
    with pytest.raises(AirflowFailException, match="trains in_worker: use tuner: local"):
        op.execute(context(op))


# -- Vertex AI ------------------------------------------------------------------------------------

HPT = f"{LOC}/hyperparameterTuningJobs/42"


def test_vertex_tuning_job_body() -> None:
    s = spec("vertex", "gcp", pruning=True)
    job = job_request(s, "gs://lake/lake")
    session = VertexRecorder({}, {"name": HPT, "state": "JOB_STATE_PENDING"})
    assert tuning_handle(session, s, job) == {"job": HPT}
    name = tuning.tuning_job_name(job.name)
    body = {
        "displayName": name,
        "studySpec": {
            "metrics": [{"metricId": "cv_score", "goal": "MAXIMIZE"}],
            "parameters": [
                {
                    "parameterId": "n_estimators",
                    "integerValueSpec": {"minValue": "5", "maxValue": "60"},
                    "scaleType": "UNIT_LINEAR_SCALE",
                },
                {"parameterId": "max_depth", "categoricalValueSpec": {"values": ["2", "8"]}},
            ],
            "medianAutomatedStoppingSpec": {"useElapsedDuration": False},
        },
        "maxTrialCount": 8,
        "parallelTrialCount": 3,
        "maxFailedTrialCount": 8,
        "trialJobSpec": {
            "workerPoolSpecs": [
                {
                    "machineSpec": {"machineType": "n1-standard-4"},
                    "replicaCount": "1",
                    "containerSpec": {
                        "imageUri": TRAINING_IMAGE,
                        "command": ["python", "-m", "mlops_core.model.tuning", "trial", job.folder],
                        "env": [{"name": "MLOPS_LAKE", "value": "gs://lake/lake"}],
                    },
                }
            ],
            "scheduling": {"timeout": "1800s"},
            "serviceAccount": "trainer@proj.iam.gserviceaccount.com",
        },
        "labels": {"mlops-pipeline": "breast_cancer", "mlops-job": job.name.replace("_", "-")},
    }
    assert session.calls == [
        ("GET", f"{PARENT}/hyperparameterTuningJobs", None, filt(name)),
        ("POST", f"{PARENT}/hyperparameterTuningJobs", body, None),
    ]


def tuning_handle(session: Any, s: Any, job: remote.JobRequest) -> dict[str, Any]:
    from mlops_core.clouds.gcp import tuning as gcp

    return gcp.submit_tuning(GCP, lambda service: session, job, s)


def test_vertex_resubmit_attaches_and_the_state_names_the_tuning_job() -> None:
    from mlops_core.clouds.gcp import client as gcp

    s = spec("vertex", "gcp")
    job = job_request(s, "gs://lake/lake")
    session = VertexRecorder({"hyperparameterTuningJobs": [{"name": HPT, "state": "JOB_STATE_RUNNING"}]})
    assert tuning_handle(session, s, job) == {"job": HPT}
    assert [c[0] for c in session.calls] == ["GET"]  # no second job
    polled = VertexRecorder(
        {"name": HPT, "state": "JOB_STATE_SUCCEEDED"},
        {"name": HPT, "state": "JOB_STATE_FAILED", "error": {"code": 9, "message": "3 trials failed"}},
    )
    assert gcp.training_state(GCP, lambda service: polled, {"job": HPT}) == remote.SUCCEEDED
    with pytest.raises(remote.RemoteJobFailed, match="hyperparameter tuning job .* 3 trials failed"):
        gcp.training_state(GCP, lambda service: polled, {"job": HPT})
    assert polled.calls[0][:2] == ("GET", f"{ROOT}/{HPT}")


# -- Azure ML -------------------------------------------------------------------------------------


def test_azure_sweep_body_bayesian_over_linear_ranges() -> None:
    s = spec("azureml", "azure")
    job = _azure_job(s)
    body = azure_tuning.azure_sweep_body(AZURE, s, job)
    assert azure_models.model_errors("JobBase", body, request=True) == []
    name = tuning.tuning_job_name(job.name)
    assert body == {
        "properties": {
            "jobType": "Sweep",
            "displayName": name,
            "experimentName": "breast_cancer",
            "description": f"mlops hyperparameter search of breast_cancer for {DS}",
            "computeId": f"{WSID}/computes/cpu-cluster",
            "tags": {
                "airflow.dag_id": "breast_cancer_training",
                "mlops.pipeline": "breast_cancer",
                "mlops.ds": DS,
                "mlops.job": job.name,
            },
            "samplingAlgorithm": {"samplingAlgorithmType": "Bayesian"},
            "searchSpace": {
                "n_estimators": ["quniform", [5.0, 60.0, 1]],
                "max_depth": ["choice", [["2", "8"]]],
            },
            "objective": {"goal": "Maximize", "primaryMetric": "cv_score"},
            "limits": {
                "jobLimitsType": "Sweep",
                "maxTotalTrials": 8,
                "maxConcurrentTrials": 3,
                "timeout": "PT30M",
                "trialTimeout": "PT30M",
            },
            "trial": {
                "command": f"python -m mlops_core.model.tuning trial {job.folder} "
                "--n_estimators=${{search_space.n_estimators}} --max_depth=${{search_space.max_depth}}",
                "environmentId": f"{WSID}/environments/mlops-train/versions/3",
                # no MLFLOW_TRACKING_URI: the trial's metric goes to the job's own (Azure ML) tracking
                "environmentVariables": {"MLOPS_LAKE": "abfs://mlops-lake/lake"},
            },
        }
    }


def _azure_job(s: Any) -> remote.JobRequest:
    return job_request(s, "abfs://mlops-lake/lake", tracking="azureml://tracking")


def test_azure_sweep_with_a_log_range_samples_seeded_random_with_median_stopping() -> None:
    s = example_spec(
        cloud="azure",
        model={
            "family": "random_forest",
            "params": {},
            "seed": 11,
            "search": {
                "params": {"min_samples_leaf": {"low": 1, "high": 50, "log": True}},
                "tuner": "platform",
            },
        },
        training={"backend": "azureml"},
    )
    props = azure_tuning.azure_sweep_body(AZURE, s, _azure_job(s))["properties"]
    assert azure_models.model_errors("JobBase", {"properties": props}, request=True) == []
    assert props["samplingAlgorithm"] == {"samplingAlgorithmType": "Random", "seed": 11}
    assert props["earlyTermination"] == {
        "policyType": "MedianStopping",
        "evaluationInterval": 1,
        "delayEvaluation": 1,
    }
    assert props["searchSpace"]["min_samples_leaf"][0] == "qloguniform"


def test_azure_submit_tuning_puts_the_sweep_once_and_attaches_on_retry() -> None:
    from mlops_core.clouds.azure import tuning as azure

    s = spec("azureml", "azure")
    job = _azure_job(s)
    name = tuning.tuning_job_name(job.name)
    body = azure_tuning.azure_sweep_body(AZURE, s, job)
    answer = {
        "id": f"{WSID}/jobs/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "properties": {**body["properties"], "status": "NotStarted"},
    }
    rec = AzureRecorder()
    rec.expect("GET", f"jobs/{name}", 404, {"error": {"code": "UserError", "message": "not found"}})
    rec.expect("PUT", f"jobs/{name}", 201, answer)
    assert azure.submit_tuning(AZURE, lambda service: rec, job, s) == {"job": name}
    rec.expect(
        "GET", f"jobs/{name}", 200, {**answer, "properties": {**answer["properties"], "status": "Running"}}
    )
    assert azure.submit_tuning(AZURE, lambda service: rec, job, s) == {"job": name}
    rec.done()
    assert [(c.method, c.url) for c in rec.calls] == [
        ("GET", f"jobs/{name}"),
        ("PUT", f"jobs/{name}"),
        ("GET", f"jobs/{name}"),
    ]
    assert rec.calls[1].json == body
