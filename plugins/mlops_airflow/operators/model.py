"""The model steps: train (here or as a cloud job), evaluate, the promotion gate, register."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.links import mlops as links
from mlops_airflow.operators import remote as remote_jobs
from mlops_airflow.operators.base import (
    _PARTITIONED,
    MlopsStep,
    Upstream,
    _as_bool,
    _uri,
    drift_evidence,
    in_cloud_profile,
    tracking,
    trigger_tags,
    upstream_dataset,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec


class TrainOperator(MlopsStep, BaseOperator):
    """Fit the spec's model and log an MLflow run (params, metrics, signature, dataset lineage, Airflow tags).

    ``training.backend`` (``auto``: the cloud profile's) decides where: in this worker, or as a
    SageMaker training job, a Vertex AI custom job or an Azure ML command job running the same
    code (:mod:`mlops_core.model.remote`). Remote jobs are named after pipeline + date + Airflow run +
    try, so a resumed try attaches to its own job and never to another run's; the task defers
    while the job runs.

    :param data: the ingest result (XCom) or the raw partition URI (templated).
    :param extra_tags: more MLflow run tags, e.g. the drift evidence that triggered this run (templated).
    :param search: the ``search`` task's result (XCom) when ``model.search.tuner`` is ``platform``:
        its best params train the model instead of a search here.
    :param poll_seconds: how often the trigger asks a remote job for its state.
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data", "extra_tags", "search")
    template_fields_renderers = {"extra_tags": "json"}
    operator_extra_links = (links.MLflowRunLink(),)

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        data: Upstream,
        extra_tags: dict[str, str] | None = None,
        search: Upstream | None = None,
        poll_seconds: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.extra_tags = extra_tags or {}
        self.search = search
        self.poll_seconds = poll_seconds

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.model.training import TrainingDataError, train

        tags = {**self.lineage(context), **{k: str(v) for k, v in self.extra_tags.items()}}
        tags |= trigger_tags(drift_evidence(context))
        backend: str = self.spec.training.backend
        if backend == "auto":
            backend = self.profile.training_backend
        if backend != "in_worker":
            return self._train_remote(context, backend, tags)
        try:
            result = train(
                self.spec,
                _uri(self.data),
                self.lake,
                self.partition(context),
                tags,
                searched=self._searched(),
            ).to_dict()
        except TrainingDataError as err:
            raise AirflowFailException(str(err)) from err
        return _with_run_link(self, result)

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The raw partition (and, for a retraining, the drift event that started it) -> the logged model."""
        from mlops_airflow import lineage

        inputs = [upstream_dataset(self.data)]
        evidence = drift_evidence(context)
        if evidence.get("ds"):
            inputs.append(lineage.drift_event_dataset(self.spec.drift_asset_uri, evidence["ds"]))
        outputs = [lineage.model_dataset(tracking(), result["model_uri"])] if result else []
        return inputs, outputs

    def _searched(self) -> dict[str, Any] | None:
        """The platform search's result; refused when the spec searches on the platform and none came."""
        search = self.spec.model.search
        if search is None or search.tuner != "platform":
            return None
        if not isinstance(self.search, dict) or "best_params" not in self.search:
            raise AirflowFailException(
                "model.search.tuner is platform but train got no search result: run the search task "
                "first (the builder's DAG does) and pass its output as search="
            )
        return dict(self.search)

    def _train_remote(self, context: Context, backend: str, tags: dict[str, str]) -> dict[str, Any]:
        """Write the job folder, start (or find) the job named after pipeline + date + try, defer."""
        from mlops_core.base import settings
        from mlops_core.model import remote

        tracking = settings.tracking_uri()
        if not tracking.startswith(("http://", "https://", "databricks", "postgresql", "mysql")):
            raise AirflowFailException(
                f"training.backend {backend!r} runs outside this machine, so MLflow must be a server it can "
                f"reach; MLFLOW_TRACKING_URI is {tracking!r} (set it to the team's MLflow server)"
            )
        req = remote.prepare(
            self.spec,
            _uri(self.data),
            self.lake,
            self.partition(context),
            {**tags, "mlops.training_backend": backend},
            context["ti"].try_number,
            env={"MLFLOW_TRACKING_URI": tracking, "MLOPS_LAKE": self.lake},
            run_key=f"{context['ti'].dag_id}/{context['ti'].run_id}",
            search=self._searched(),
        )
        self.log.info("training %s as %s job %s (folder %s)", self.spec.name, backend, req.name, req.folder)
        timeout = self.spec.training.timeout_minutes * 60
        trigger: Any
        if backend == "sagemaker":
            from mlops_core.clouds.aws import training as aws

            config = aws.training_job_config(self.profile, self.spec, req)
            trigger = remote_jobs.sagemaker(self, "training", req.name, config, timeout)
        elif backend == "vertex":
            from mlops_airflow.hooks.cloud import clients_for
            from mlops_core.clouds.gcp import client as gcp

            handle = gcp.submit_training(self.profile, clients_for(self.profile), req)
            trigger = remote_jobs.vertex(self, handle, timeout)
        elif backend == "azureml":
            from mlops_core.clouds.azure import client as azure

            azure.submit_training(self.profile, remote_jobs.azureml_clients(self), req)
            trigger = remote_jobs.azureml(self, req.name, timeout)
        else:
            raise AirflowFailException(f"unknown training backend {backend!r}")
        self.defer(trigger=trigger, method_name="remote_complete", kwargs={"folder": req.folder})

    @in_cloud_profile
    def remote_complete(
        self, context: Context, event: dict[str, Any] | None = None, folder: str = ""
    ) -> dict[str, Any]:
        """Resume after the job: fail with the platform's message, or return what the job wrote."""
        from mlops_core.model import remote

        event = event or {}
        if event.get("status") not in ("success", None):
            raise AirflowFailException(f"training job failed: {event.get('message') or event}")
        try:
            return _with_run_link(self, remote.read_result(folder))
        except remote.RemoteJobFailed as err:
            raise AirflowFailException(str(err)) from err


def _with_run_link(step: Any, result: dict[str, Any]) -> dict[str, Any]:
    links.remember(
        step, links.MLflowRunLink.name, links.run_url(result.get("experiment_id"), result.get("run_id"))
    )
    return result


class EvaluateOperator(MlopsStep, BaseOperator):
    """Score challenger and champion on the same holdout; metrics and a paired bootstrap go to MLflow.

    :param trained: the train result (XCom dict).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "trained")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        trained: dict[str, Any] | Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.trained = trained

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_airflow.hooks.cloud import export_metrics
        from mlops_core import lifecycle
        from mlops_core.monitor import prometheus

        result = lifecycle.evaluate(self.spec, self.trained, self.lake, self.partition(context))
        export_metrics(
            self.profile,
            self.spec.name,
            {f"holdout_{k}": v for k, v in result["challenger"].items()},
            {"Stage": "evaluation"},
        )
        prometheus.push_evaluation(self.spec.name, result["challenger"])
        return result

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The challenger and the holdout it is scored on."""
        return _trained_model(self.trained), []


class GateOperator(MlopsStep, BaseOperator):
    """Decide promotion and record why. A rejection is a normal outcome: the task succeeds, the
    challenger is still registered (alias ``challenger``), and :class:`DeployOperator` skips.

    :param trained: the train result (XCom dict).
    :param evaluation: the evaluate result (XCom dict).
    :param force_promote: human override (templated; ``params.force_promote`` in the builder's DAGs).
    :param reason: why the override; required when ``force_promote`` (templated).
    """

    template_fields: Sequence[str] = ("trained", "evaluation", "force_promote", "reason")
    ui_color = "#fff3cd"

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        trained: Any,
        evaluation: Any,
        force_promote: bool | str = False,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.trained = trained
        self.evaluation = evaluation
        self.force_promote = force_promote
        self.reason = reason

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        force = _as_bool(self.force_promote)
        reason = None if self.reason in (None, "None") else str(self.reason)
        who = getattr(context["dag_run"], "triggering_user_name", None)
        try:
            decision = lifecycle.gate(
                self.spec,
                self.evaluation,
                self.trained["run_id"],
                force=force,
                forced_by=who,
                force_reason=reason,
            )
        except ValueError as err:  # force_promote without a reason
            raise AirflowFailException(str(err)) from err
        if not decision.promote:
            from mlops_airflow.notifications import alerts as notifiers

            notifiers.notify_gate_rejected(self.spec, context, decision.to_dict())
        return decision.to_dict()

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The challenger it decides on."""
        return _trained_model(self.trained), []


class RegisterOperator(MlopsStep, BaseOperator):
    """Register the challenger as a model version (once per Airflow run), with lineage and gate tags."""

    template_fields: Sequence[str] = ("trained", "decision")
    operator_extra_links = (links.MLflowModelVersionLink(),)

    def __init__(self, *, pipeline: PipelineSpec | str, trained: Any, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.trained = trained
        self.decision = decision

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle
        from mlops_core.monitor import prometheus

        ti = context["ti"]
        result = lifecycle.register(
            self.spec, self.trained, self.decision, f"{ti.dag_id}/{ti.run_id}", self.lineage(context)
        )
        url = links.version_url(self.spec.registered_model_name, result.get("version"))
        links.remember(self, links.MLflowModelVersionLink.name, url)
        # after registration, so the counts include this version's decision (tagged on it now)
        promote = _as_bool((self.decision or {}).get("promote"))
        prometheus.push_gate(self.spec.name, self.spec.registered_model_name, promote)
        return result

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The logged model -> the registered model version."""
        from mlops_airflow import lineage

        inputs = _trained_model(self.trained)[:1]
        if not result:
            return inputs, []
        return inputs, [lineage.model_version_dataset(tracking(), result["model_name"], result["version"])]


def _trained_model(trained: Any) -> list[Any]:
    """The model a train step logged and its holdout partition (from its XCom dict)."""
    from mlops_airflow import lineage

    if not isinstance(trained, dict) or "model_uri" not in trained:
        return []
    found = [lineage.model_dataset(tracking(), str(trained["model_uri"]))]
    if trained.get("holdout_uri"):
        found.append(lineage.uri_dataset(str(trained["holdout_uri"])))
    return found
