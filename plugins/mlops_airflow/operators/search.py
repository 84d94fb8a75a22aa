"""The ``search`` step: ``model.search`` run by the training backend's own tuning service.

SageMaker automatic model tuning (the amazon provider's ``SageMakerHook.create_tuning_job`` and
``SageMakerTrigger(job_type="tuning")``, what its ``SageMakerTuningOperator`` runs), Vertex AI
hyperparameter tuning or an Azure ML sweep; the requests are :mod:`mlops_core.model.tuning`'s. The task
defers while the trials run, then picks the best trial from the records the trials wrote into
the job folder; ``train`` fits the challenger with those params on the same partition version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.operators import remote as remote_jobs
from mlops_airflow.operators.base import (
    _PARTITIONED,
    MlopsStep,
    Upstream,
    _uri,
    in_cloud_profile,
    upstream_dataset,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec

TASK_ID = "search"
_BACKENDS = ("sagemaker", "vertex", "azureml")


class SearchOperator(MlopsStep, BaseOperator):
    """Run ``model.search`` on the tuning service of the training backend; return the best trial.

    The job is named after pipeline, day, Airflow run and try (a resumed try attaches to it). Its
    trials read the partition at the manifest version this task saw, and only its training rows.

    :param data: the ingest result (XCom) or the raw partition URI (templated).
    :param poll_seconds: how often the trigger asks the tuning job for its state.
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        data: Upstream,
        poll_seconds: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.poll_seconds = poll_seconds

    def _backend(self) -> str:
        backend: str = self.spec.training.backend
        if backend == "auto":
            backend = self.profile.training_backend
        if backend not in _BACKENDS:
            raise AirflowFailException(
                f"model.search.tuner: platform needs a training backend with a tuning service "
                f"({', '.join(_BACKENDS)}); cloud profile {self.profile.name!r} trains {backend}: "
                "use tuner: local here"
            )
        return backend

    @in_cloud_profile
    def execute(self, context: Context) -> None:
        from mlops_core.data import storage
        from mlops_core.model import remote, tuning

        search = self.spec.model.search
        if search is None or search.tuner != "platform":
            raise AirflowFailException(f"pipeline {self.spec.name!r} does not search on the platform")
        backend = self._backend()
        raw_uri = _uri(self.data)
        version = storage.read_manifest(raw_uri).version
        ti = context["ti"]
        req = remote.prepare(
            self.spec,
            raw_uri,
            self.lake,
            self.partition(context),
            {**self.lineage(context), "mlops.search_backend": backend},
            ti.try_number,
            env={"MLOPS_LAKE": self.lake},
            run_key=f"{ti.dag_id}/{ti.run_id}",
            kind="hpo",
            raw_version=version,
        )
        name = tuning.tuning_job_name(req.name)
        self.log.info(
            "searching %s on %s: tuning job %s, %d trial(s), %d at a time, folder %s",
            self.spec.name,
            backend,
            name,
            search.trials,
            search.concurrent,
            req.folder,
        )
        trigger = self._start(backend, req, name, self.wait_seconds())
        self.defer(
            trigger=trigger,
            method_name="search_complete",
            kwargs={"folder": req.folder, "job": name, "backend": backend, "raw_version": version},
        )

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The raw partition its trials read."""
        return [upstream_dataset(self.data)], []

    def wait_seconds(self) -> float:
        """How long the trigger waits: the search's bound, per round of parallel trials on Vertex
        AI (whose bound is per trial), plus ten minutes of queueing."""
        from math import ceil

        search = self.spec.model.search
        assert search is not None
        rounds = ceil(search.trials / search.concurrent) if self._backend() == "vertex" else 1
        return search.timeout_minutes * 60 * rounds + 600

    def _start(self, backend: str, req: Any, name: str, timeout: float) -> Any:
        from mlops_core.clouds.aws import tuning as aws_tuning

        if backend == "sagemaker":
            config = aws_tuning.sagemaker_tuning_config(self.profile, self.spec, req)
            return remote_jobs.sagemaker(self, "tuning", name, config, timeout)
        if backend == "vertex":
            from mlops_airflow.hooks.cloud import clients_for
            from mlops_core.clouds.gcp import tuning as gcp

            return remote_jobs.vertex(
                self, gcp.submit_tuning(self.profile, clients_for(self.profile), req), timeout
            )
        from mlops_core.clouds.azure import tuning as azure

        azure.submit_tuning(self.profile, remote_jobs.azureml_clients(self), req)
        return remote_jobs.azureml(self, name, timeout)

    @in_cloud_profile
    def search_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        folder: str = "",
        job: str = "",
        backend: str = "",
        raw_version: int | None = None,
    ) -> dict[str, Any]:
        """After the tuning job: fail with the platform's message, or the best trial of the records."""
        from mlops_core.model import tuning

        event = event or {}
        if event.get("status") not in ("success", None):
            raise AirflowFailException(f"tuning job {job} failed: {event.get('message') or event}")
        try:
            found = tuning.collect(self.spec, folder)
        except tuning.NoTrialResult as err:
            raise AirflowFailException(str(err)) from err
        self.log.info(
            "search %s: best of %d trial(s) is %s with cv %s %.4f",
            job,
            len(found["trials"]),
            found["best_params"],
            found["metric"],
            found["best_value"],
        )
        return {**found, "backend": backend, "tuning_job": job, "folder": folder, "raw_version": raw_version}
