"""The ``deployment`` section: the target, the rollout strategy, approval, autoscaling and the
KServe predictor's pod."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.spec.common import SpecModel


class ApprovalSpec(SpecModel):
    """A person approves a promotion between ``register`` and ``deploy`` (Airflow's human-in-the-loop
    ``ApprovalOperator``: the Required Actions page, or the REST API). Approve deploys; reject or
    no answer within ``timeout_minutes`` skips deploy. The decision, who and when are recorded on
    the model version. ``assigned_users``: Airflow user names allowed to answer (empty: anyone
    who may act on the DAG)."""

    required: bool = True
    assigned_users: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field([], max_length=20)
    timeout_minutes: int = Field(24 * 60, ge=1, le=30 * 24 * 60)


class AutoscalingSpec(SpecModel):
    """Instances between ``min_instances`` and ``max_instances``, scaled on one target.

    SageMaker: Application Auto Scaling on the variant (target tracking on invocations per
    instance, or on the variant's CPU utilisation). Vertex AI: the deployed model's min/max
    replicas (CPU target; Vertex's default 60 % when unset). Azure ML: ``TargetUtilization``
    scale settings (CPU; 70 % when unset). KServe: the predictor's ``minReplicas`` /
    ``maxReplicas``, and ``scaleMetric: cpu`` with ``scaleTarget`` for a CPU target (Knative's
    concurrency scaling when unset). Invocations per instance is SageMaker's only; the cooldowns
    are SageMaker's too (the others scale on their own timings).
    """

    min_instances: int = Field(1, ge=1, le=100)
    max_instances: int = Field(ge=1, le=100)
    target_cpu_percent: int | None = Field(None, ge=1, le=100)
    target_invocations_per_instance: float | None = Field(None, gt=0, le=1_000_000, allow_inf_nan=False)
    scale_in_cooldown_seconds: int = Field(300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = Field(60, ge=0, le=3600)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) is above max_instances ({self.max_instances})"
            )
        if self.target_cpu_percent is not None and self.target_invocations_per_instance is not None:
            raise ValueError("scale on one target: target_cpu_percent or target_invocations_per_instance")
        return self


# A Kubernetes resource quantity as people write CPU and memory: 500m, 1, 1.5, 512Mi, 2Gi, 1G
_QUANTITY = r"^[0-9]{1,6}(\.[0-9]{1,3})?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"


class KServeSpec(SpecModel):
    """The predictor's pod on the ``kserve`` target (``deployment.kserve``); all optional.

    ``cpu`` / ``memory`` are the container's requests, ``cpu_limit`` / ``memory_limit`` its limits
    (default: the requests); with none of them the ServingRuntime's defaults apply. ``runtime``
    names a ServingRuntime (default: the one KServe picks for ``mlflow`` on the V2 protocol,
    ``kserve-mlserver``). Cluster-wide values (namespace, service account, ingress) are the cloud
    profile's ``kserve_*`` settings, not the pipeline's.
    """

    cpu: str | None = Field(None, pattern=_QUANTITY)
    memory: str | None = Field(None, pattern=_QUANTITY)
    cpu_limit: str | None = Field(None, pattern=_QUANTITY)
    memory_limit: str | None = Field(None, pattern=_QUANTITY)
    runtime: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


# the metrics the live challenger's sequential test can judge (means over rows) -> problem types
CHALLENGER_METRICS: dict[str, tuple[str, ...]] = {
    "accuracy": ("binary", "multiclass"),
    "log_loss": ("binary", "multiclass"),
    "brier": ("binary",),
    "mae": ("regression",),
    "mse": ("regression",),
}


class ChallengerSpec(SpecModel):
    """A live challenger on a canary split, judged by a sequential test on realized labels.

    A version the gate promoted while a champion exists becomes the ``live_challenger`` (an MLflow
    alias) instead of replacing it. Batch and monitoring scoring send ``split_percent`` % of the
    rows to it (a stable hash of the row key: a row's arm never changes) and write both arms'
    predictions with a ``variant`` column. Each monitored day the ``challenger_verdict`` step takes the
    labels (``feedback``) and runs a mixture sequential probability ratio test on the per-row
    ``metric`` (:mod:`mlops_core.monitor.sequential`): **under H0 (the challenger is no better than
    the champion by more than ``margin``) the probability that it is ever promoted, at any of the
    daily looks, is at most ``alpha``**. It promotes when the always-valid p-value is below
    ``alpha``; rolls back when the confidence sequence lies wholly below ``-margin`` (harm), or when
    the challenger arm reached ``max_rows`` labelled rows or ``max_days`` days passed without a
    decision (the champion stays). ``metric``: a mean over rows (accuracy, log_loss, brier; mae,
    mse); default the primary metric when it is one, else log_loss (classifiers) or mse
    (regression). Local target only for now (endpoint targets have their own canary).
    """

    enabled: bool = True
    split_percent: int = Field(10, ge=1, le=50)
    metric: Literal["accuracy", "log_loss", "brier", "mae", "mse"] | None = None
    alpha: float = Field(0.05, gt=0.0, le=0.2)
    margin: float = Field(0.0, ge=0.0, le=1e6, allow_inf_nan=False)
    min_rows: int = Field(200, ge=30, le=1_000_000)
    max_rows: int = Field(20_000, ge=100, le=100_000_000)
    max_days: int = Field(30, ge=1, le=365)

    @field_validator("metric", mode="before")
    @classmethod
    def _per_row(cls, value: object) -> object:
        if value is None or value in CHALLENGER_METRICS:
            return value
        why = {
            "roc_auc": "it ranks rows against each other",
            "average_precision": "it ranks rows against each other",
            "rmse": "it is the square root of a mean (use mse: the same ordering, and a mean)",
            "r2": "it divides by the labels' variance (use mse)",
        }.get(str(value), "it is not a mean of per-row values")
        raise ValueError(
            f"{value!r} cannot be judged by the sequential test: {why}. Use one of: "
            f"{', '.join(CHALLENGER_METRICS)} (a mean over rows), or leave it unset (the primary metric "
            "when it is one, else log_loss for classifiers and mse for regression)"
        )

    @model_validator(mode="after")
    def _rows(self) -> ChallengerSpec:
        if self.min_rows >= self.max_rows:
            raise ValueError(f"min_rows ({self.min_rows}) must be below max_rows ({self.max_rows})")
        return self


# deployment.shadow runs on every target. Azure ML runs the batch shadow, not a mirrored one:
# mirror_traffic's answers can only be read back through the deployment's data collector, which only
# preview API versions have (this package sends 2023-10-01; docs/shadow.md).


class ShadowSpec(SpecModel):
    """A shadow deployment judged on its predictions (``deployment.shadow``).

    A version the gate promoted while a champion exists goes in as ``shadow`` (an MLflow alias)
    instead of replacing it; the champion keeps serving. Batch and monitoring scoring score *every*
    row with both: the champion's predictions are written as always, the shadow's beside them in a
    sibling partition (``<stage>_shadow``, the same row keys, in the same order). Once ``days``
    monitored days *and* ``min_rows`` shadow-scored rows are in, the monitoring DAG's ``shadow_verdict``
    step compares the two on the same rows: the share of rows whose predicted label differs
    (classifiers; at most ``max_disagreement``), the Kolmogorov-Smirnov statistic between the two
    score distributions (the positive class's probability, each class's for multiclass, the
    prediction for regression; at most ``max_score_shift``), and, once ``min_labelled_rows`` labels
    have joined through ``feedback``, the paired bootstrap interval of ``metric`` (shadow minus
    champion, in the better direction; default the primary metric). Promotion (through the gate
    record, the approval and the artifact digest, as a deploy) needs every check to pass and the
    interval's lower end at or above ``-margin`` (not worse), above 0 with ``require_better``; else
    the shadow is rejected (alias removed, reasons tagged on the version). Without enough labels the
    verdict rests on agreement and score shift, unless ``require_labels`` (or ``require_better``) makes
    it wait for them. ``margin`` is in the metric's units.

    Targets: ``local``, ``vertex``, ``azureml`` and ``kserve`` keep the endpoint on the champion and judge
    on batch scoring as above; a promotion deploys the shadow's version through the target's own path (the
    ``strategy``), smoke-tests it, then moves ``champion``. ``sagemaker`` runs a shadow-mode
    inference experiment instead: the shadow variant gets a copy of every request, both answers
    are captured to ``<lake>/<name>/capture/`` and judged; a promotion ends the experiment with
    the shadow variant promoted, a rejection with it removed. ``azureml`` with ``mirror_percent``:
    the shadow's version is deployed beside the champion's with a data collector and the endpoint
    mirrors that percentage of its live requests to it; the verdict judges the shadow's collected
    answers against the champion's recomputed on the same inputs (docs/shadow.md). Without
    ``mirror_percent`` Azure ML is judged on batch scoring, as Vertex AI and KServe.
    """

    enabled: bool = True
    days: int = Field(7, ge=1, le=90)
    min_rows: int = Field(500, ge=30, le=100_000_000)
    max_disagreement: float = Field(0.05, ge=0.0, le=1.0, allow_inf_nan=False)
    max_score_shift: float = Field(0.1, ge=0.0, le=1.0, allow_inf_nan=False)
    metric: str | None = Field(None, max_length=64)
    require_labels: bool = False
    require_better: bool = False
    margin: float = Field(0.0, ge=0.0, le=1e6, allow_inf_nan=False)
    min_labelled_rows: int = Field(100, ge=20, le=100_000_000)
    # Azure ML only: the share of live requests the endpoint mirrors to the shadow's deployment
    # (Azure ML mirrors at most 50 %); unset: the batch shadow
    mirror_percent: int | None = Field(None, ge=1, le=50)


class DeploymentSpec(SpecModel):
    """Where the champion goes. ``auto``: the cloud profile's target.

    ``local``: the MLflow alias ``champion`` is the deployment (one model, nothing to split, so
    ``canary``/``blue_green`` act as ``all_at_once`` there). Endpoint targets (``sagemaker``,
    ``vertex``, ``azureml``, ``kserve``) shift ``canary_percent`` of the traffic to the new
    version, smoke-test the endpoint, then promote it to 100 % or roll back. ``kserve``: a KServe
    InferenceService on the cluster of the profile's ``kubernetes_conn_id``; ``instance_type`` is
    then a node selector on ``node.kubernetes.io/instance-type`` and ``kserve`` sizes the pod.
    """

    target: Literal["auto", "local", "sagemaker", "vertex", "azureml", "kserve"] = "auto"
    strategy: Literal["all_at_once", "blue_green", "canary"] = "all_at_once"
    canary_percent: int = Field(10, ge=1, le=50)
    canary_wait_minutes: int = Field(10, ge=0, le=24 * 60)
    instance_type: str | None = Field(None, max_length=64)  # default: the profile's
    instance_count: int = Field(1, ge=1, le=100)
    smoke_rows: int = Field(50, ge=1, le=100_000)
    tolerance: float = Field(1e-6, ge=0.0, le=1.0)
    approval: ApprovalSpec | None = None
    autoscaling: AutoscalingSpec | None = None
    kserve: KServeSpec | None = None
    challenger: ChallengerSpec | None = None
    shadow: ShadowSpec | None = None

    @model_validator(mode="after")
    def _strategy(self) -> DeploymentSpec:
        if self.target == "local" and self.strategy != "all_at_once":
            raise ValueError(
                f"deployment.strategy {self.strategy!r} needs an endpoint target (sagemaker, vertex, azureml, "
                "kserve); the local target moves the champion alias all at once"
            )
        if self.challenger is not None and self.challenger.enabled and self.target not in ("auto", "local"):
            raise ValueError(
                f"deployment.challenger runs on the local target only for now (batch and monitoring scoring "
                f"split the rows); target {self.target!r} has its own canary (strategy: canary). Set "
                "target: local, or remove the challenger block"
            )
        self._check_shadow()
        if self.kserve is not None and self.target not in ("auto", "kserve"):
            raise ValueError(
                f"deployment.kserve sizes a KServe predictor; target {self.target!r} does not read it "
                "(set target: kserve, or remove the kserve block)"
            )
        if self.autoscaling is not None:
            if self.target == "local":
                raise ValueError(
                    "deployment.autoscaling needs an endpoint target (sagemaker, vertex, azureml, kserve)"
                )
            if self.instance_count != 1:
                raise ValueError(
                    "deployment.instance_count and deployment.autoscaling both size the endpoint; "
                    "with autoscaling, set autoscaling.min_instances instead"
                )
            if (
                self.target in ("vertex", "azureml", "kserve")
                and self.autoscaling.target_invocations_per_instance
            ):
                raise ValueError(
                    f"deployment.autoscaling.target_invocations_per_instance is SageMaker's; {self.target} "
                    "scales on CPU: set target_cpu_percent"
                )
        return self

    def _check_shadow(self) -> None:
        if self.shadow is None or not self.shadow.enabled:
            return
        if self.challenger is not None and self.challenger.enabled:
            raise ValueError(
                "deployment.shadow and deployment.challenger both decide what a promoted version does beside "
                "the champion (scored on every row next to it, or live on a share of the rows): keep one "
                "of them (or set enabled: false on the other)"
            )
        if self.shadow.mirror_percent is not None and self.target not in ("auto", "azureml"):
            raise ValueError(
                f"deployment.shadow.mirror_percent mirrors an Azure ML endpoint's live requests to the shadow; "
                f"target {self.target!r} does not read it (SageMaker's shadow mirrors every request by itself; "
                "Vertex AI, KServe and local judge on batch scoring): set target: azureml, or remove "
                "mirror_percent"
            )

    @property
    def shadow_on(self) -> bool:
        """``deployment.shadow`` is configured and enabled."""
        return self.shadow is not None and self.shadow.enabled

    @property
    def initial_instances(self) -> int:
        """Instances a new deployment starts with: ``autoscaling.min_instances`` or ``instance_count``."""
        return self.autoscaling.min_instances if self.autoscaling is not None else self.instance_count
