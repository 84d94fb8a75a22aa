"""The root of the spec: :class:`PipelineSpec`, the sections together, and the rules that span
them (a metric valid for the problem type, a search that fits the training backend, a decay
policy that can fire)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.base import envref
from mlops_core.spec.alerts import AlertsSpec
from mlops_core.spec.catalog import ESTIMABLE_METRICS, METRICS, ProblemType, metrics_for
from mlops_core.spec.common import SpecModel, check_schedule
from mlops_core.spec.deployment import CHALLENGER_METRICS, DeploymentSpec
from mlops_core.spec.estimators import check_params, check_search
from mlops_core.spec.evaluation import SLICE_ONLY_METRICS, EvaluationSpec
from mlops_core.spec.features import ContractSpec, ExpectationSpec, FeaturesSpec, FeatureStoreSpec
from mlops_core.spec.ingestion import IngestionSpec
from mlops_core.spec.model import ModelSpec, TrainingSpec
from mlops_core.spec.monitoring import FeedbackSpec, MonitoringSpec, ScoringSpec
from mlops_core.spec.source import SourceSpec

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_ .\-]*$", max_length=128)]
_ENV_NAME = re.compile(f"^{envref.NAME.pattern}$")

_PER_CLASS = re.compile(r"^(recall|precision|f1)_(?!macro$|weighted$)(.+)$")


def _per_class_hint(name: str, problem: str) -> str:
    """How to get a per-class metric (``recall_bad``) the gate does not name that way."""
    match = _PER_CLASS.match(name)
    if not match:
        return ""
    metric, label = match.groups()
    if problem == "binary":
        return (
            f". Per-class metrics have no name of their own: {metric} is the {metric} of positive_class, so "
            f"set positive_class: {label} and use {metric} (the other class's recall is "
            "1 - false_positive_rate, a slice metric; balanced_accuracy is the mean recall of both)"
        )
    return (
        f". Per-class metrics have no name of their own: f1_macro and balanced_accuracy weigh every "
        f"class alike (a rare {label!r} counts as much as a common class); or frame {label!r} against "
        "the rest as a binary pipeline with positive_class"
    )


class PipelineSpec(SpecModel):
    """One model's whole lifecycle. See README "The pipeline YAML" for every field."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    owner: str = Field("mlops", min_length=1, max_length=64)
    description: str = ""
    schedule: str | None = None
    start_date: date = date(2026, 1, 1)
    end_date: date | None = None
    tags: list[Identifier] = []
    retries: int = Field(2, ge=0, le=10)
    retry_delay_minutes: float = Field(2.0, ge=0.0, le=1440.0)
    task_timeout_minutes: int = Field(60, ge=1, le=24 * 60)
    cloud: Literal["local", "aws", "gcp", "azure"] = "local"
    env: list[Annotated[str, Field(pattern=_ENV_NAME.pattern)]] = Field([], max_length=20)

    source: SourceSpec
    ingestion: IngestionSpec | None = None
    target: str
    problem_type: ProblemType
    positive_class: str | int | None = None
    features: FeaturesSpec = FeaturesSpec()
    feature_store: FeatureStoreSpec | None = None
    expectations: list[ExpectationSpec] = []
    contract: ContractSpec = ContractSpec()
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec
    deployment: DeploymentSpec = DeploymentSpec()
    scoring: ScoringSpec = ScoringSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    feedback: FeedbackSpec | None = None
    alerts: AlertsSpec | None = None

    _schedule = field_validator("schedule")(classmethod(lambda cls, v: check_schedule(v)))

    @field_validator("positive_class", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, value: Any) -> Any:
        # YAML 1.1 reads Yes/No/on/off/true/false as booleans; a label is never one
        if isinstance(value, bool):
            raise ValueError(
                f"YAML read the label as the boolean {value}; if the label is a word such as Yes, No, "
                'true or on, quote it: positive_class: "Yes"'
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        allowed = metrics_for(self.problem_type)
        for where, name in [("evaluation.primary_metric", self.evaluation.primary_metric)] + [
            (f"evaluation.floors.{m}", m) for m in self.evaluation.floors
        ]:
            if name not in allowed:
                raise ValueError(
                    f"{where}: {name!r} is not a {self.problem_type} metric; choose one of: {', '.join(allowed)}"
                    + _per_class_hint(name, self.problem_type)
                )
        check_params(self.model.family, dict(self.model.params), self.problem_type)
        self._check_search()
        if self.problem_type != "binary" and self.evaluation.threshold is not None:
            raise ValueError("evaluation.threshold applies to binary problems only")
        if self.problem_type != "binary" and self.positive_class is not None:
            raise ValueError(
                f"positive_class applies to binary problems only, and problem_type is {self.problem_type}: "
                "remove positive_class"
            )
        if self.target in self.features.exclude + self.features.id_columns + self.features.time_columns:
            raise ValueError(f"target {self.target!r} is also listed under features")
        if self.features.include and self.target in self.features.include:
            raise ValueError(f"target {self.target!r} cannot be a feature (remove it from features.include)")
        self._check_slices(allowed)
        self._check_feedback(allowed)
        self._check_challenger()
        self._check_shadow(allowed)
        self._check_feature_store()
        return self

    def _check_search(self) -> None:
        search = self.model.search
        if search is None:
            return
        check_search(self.model.family, dict(self.model.params), search, self.problem_type)
        if search.tuner == "platform" and self.training.backend == "in_worker":
            raise ValueError(
                "model.search.tuner: platform runs trials on the training backend's tuning service; "
                "training.backend in_worker has none (use sagemaker, vertex, azureml or auto on a cloud "
                "profile, or tuner: local)"
            )
        if search.tuner == "local" and search.timeout_minutes >= self.training.timeout_minutes:
            raise ValueError(
                f"model.search.timeout_minutes ({search.timeout_minutes}) must be below "
                f"training.timeout_minutes ({self.training.timeout_minutes}): the final fit needs time too"
            )

    def _check_feature_store(self) -> None:
        if self.feature_store is None:
            return
        joined = {f for j in self.feature_store.joins for f in j.features}
        if self.target in joined:
            raise ValueError(f"feature_store: the target {self.target!r} cannot be a joined feature")

    def _check_slices(self, allowed: list[str]) -> None:
        sl = self.evaluation.slices
        if sl is None:
            return
        if self.problem_type != "binary":  # rates of the positive class (fairlearn's are binary only)
            fair = [m for m in sl.metrics if m in SLICE_ONLY_METRICS]
            if fair:
                raise ValueError(f"evaluation.slices.metrics: {fair} apply to binary problems only")
        names = set(allowed) | (set(SLICE_ONLY_METRICS) if self.problem_type == "binary" else set())
        for where, metric in [("metrics", m) for m in sl.metrics] + [
            (key, m) for key in ("floors", "max_gap") for m in getattr(sl, key)
        ]:
            if metric not in names:
                raise ValueError(
                    f"evaluation.slices.{where}: {metric!r} is not a {self.problem_type} slice metric; "
                    f"choose one of: {', '.join(sorted(names))}"
                )
        judged = set(sl.floors) | set(sl.max_gap)
        if not judged <= set(sl.metrics):
            raise ValueError(
                f"evaluation.slices: {sorted(judged - set(sl.metrics))} have a floor or max_gap but are not "
                "listed under evaluation.slices.metrics"
            )
        if self.target in {c.column for c in sl.columns}:
            raise ValueError(f"evaluation.slices: the target {self.target!r} cannot be a slice column")

    def _check_feedback(self, allowed: list[str]) -> None:
        fb = self.feedback
        if fb is None:
            return
        if not self.monitoring.enabled:
            raise ValueError(
                "feedback needs monitoring.enabled: the performance step runs in the monitoring DAG"
            )
        metric = fb.decay.metric or self.evaluation.primary_metric
        if metric not in allowed:
            raise ValueError(
                f"feedback.decay.metric: {metric!r} is not a {self.problem_type} metric; choose one of: "
                f"{', '.join(allowed)}"
            )
        if (
            fb.decay.enabled
            and fb.decay.floor is None
            and fb.decay.max_drop is None
            and (metric not in self.evaluation.floors)
        ):
            raise ValueError(
                "feedback.decay has nothing to judge against: set floor or max_drop, or a floor for "
                f"{metric!r} under evaluation.floors"
            )
        if fb.decay.enabled:
            self._check_decay_bounds(metric)
        if fb.decay.on == "estimated":
            self._check_estimated(metric)
        if fb.partition.mode == "files" and "{ds}" not in fb.uri:
            raise ValueError("feedback.partition.mode 'files' needs '{ds}' in feedback.uri")

    def _check_estimated(self, metric: str) -> None:
        """``feedback.decay.on: estimated`` needs a binary classifier's probabilities and an estimable metric."""
        if self.problem_type != "binary":
            raise ValueError(
                f"feedback.decay.on: estimated needs a binary classifier's calibrated probabilities "
                f"(confidence-based performance estimation); {self.name} is a {self.problem_type} pipeline, "
                "which has none to estimate from"
                + (" (multiclass is not estimated yet)" if self.problem_type == "multiclass" else "")
                + ": use feedback.decay.on: realized (the default), judged on the labels"
            )
        if metric not in ESTIMABLE_METRICS:
            raise ValueError(
                f"feedback.decay.on: estimated cannot estimate {metric!r} without labels; set feedback.decay.metric "
                f"to one of {', '.join(ESTIMABLE_METRICS)}, or use on: realized"
            )
        if not self.monitoring.estimate.enabled:
            raise ValueError(
                "feedback.decay.on: estimated needs monitoring.estimate.enabled (the estimate is what it "
                "judges): enable it or use on: realized"
            )

    def _check_challenger(self) -> None:
        ch = self.deployment.challenger
        if ch is None or not ch.enabled:
            return
        if self.feedback is None:
            raise ValueError(
                "deployment.challenger is judged on realized labels: add a feedback section (where the labels "
                "land and how they join), or remove the challenger block"
            )
        if ch.metric is not None and self.problem_type not in CHALLENGER_METRICS[ch.metric]:
            usable = [m for m, problems in CHALLENGER_METRICS.items() if self.problem_type in problems]
            raise ValueError(
                f"deployment.challenger.metric {ch.metric!r} does not apply to a {self.problem_type} model; "
                f"choose one of: {', '.join(usable)}"
            )

    def _check_shadow(self, allowed: list[str]) -> None:
        sh = self.deployment.shadow
        if sh is None or not sh.enabled:
            return
        if not self.monitoring.enabled:
            raise ValueError(
                "deployment.shadow is judged by the monitoring DAG's shadow_verdict step: set "
                "monitoring.enabled: true, or remove the shadow block"
            )
        if sh.metric is not None and sh.metric not in allowed:
            raise ValueError(
                f"deployment.shadow.metric: {sh.metric!r} is not a {self.problem_type} metric; choose one of: "
                f"{', '.join(allowed)} (or leave it unset: the primary metric)"
            )
        if (sh.require_labels or sh.require_better) and self.feedback is None:
            which = "require_labels" if sh.require_labels else "require_better"
            raise ValueError(
                f"deployment.shadow.{which} needs labels: add a feedback section (where the labels land and "
                f"how they join), or set {which}: false"
            )

    @property
    def shadow_metric(self) -> str:
        """The metric the shadow's paired comparison uses: ``deployment.shadow.metric``, else the primary."""
        sh = self.deployment.shadow
        return sh.metric if sh is not None and sh.metric else self.evaluation.primary_metric

    @property
    def challenger_metric(self) -> str:
        """The per-row metric the challenger is judged on: ``deployment.challenger.metric``, else the
        primary metric when it is a mean over rows, else log_loss (classifiers) or mse (regression)."""
        ch = self.deployment.challenger
        if ch is not None and ch.metric is not None:
            return ch.metric
        primary = self.evaluation.primary_metric
        if self.problem_type in CHALLENGER_METRICS.get(primary, ()):
            return primary
        return "mse" if self.problem_type == "regression" else "log_loss"

    def _check_decay_bounds(self, metric: str) -> None:
        """Refuse a decay policy whose bounds make every day decay, or make decay impossible."""
        fb = self.feedback
        assert fb is not None
        higher = METRICS[metric].higher_is_better
        low, high = _METRIC_RANGE.get(metric, (None, None))
        floor = fb.decay.floor if fb.decay.floor is not None else self.evaluation.floors.get(metric)
        where = "feedback.decay.floor" if fb.decay.floor is not None else f"evaluation.floors.{metric}"
        if floor is not None:
            always = (high is not None and floor > high) if higher else (floor <= (low or 0.0))
            never = (low is not None and floor <= low) if higher else (high is not None and floor >= high)
            if always:
                raise ValueError(
                    f"{where}: {floor:g} puts every possible {metric} "
                    f"{'below' if higher else 'above'} the floor, so every labelled day would decay; "
                    f"{metric} is {'higher' if higher else 'lower'}-is-better"
                    + (f" and lies in [{low:g}, {high:g}]" if low is not None and high is not None else "")
                )
            if never and fb.decay.max_drop is None:
                raise ValueError(
                    f"{where}: {floor:g} can never be crossed by {metric} and there is no max_drop: "
                    "the decay policy could never fire"
                )
        drop = fb.decay.max_drop
        if drop is not None and low is not None and high is not None and drop >= high - low and floor is None:
            raise ValueError(
                f"feedback.decay.max_drop: {drop:g} is the whole range of {metric} ([{low:g}, {high:g}]) "
                "and there is no floor: the decay policy could never fire"
            )

    def warnings(self) -> list[str]:
        """Legal but probably not meant: shown by ``mlops-airflow validate`` (the file still loads)."""
        found: list[str] = []
        fb = self.feedback
        if fb is None or not fb.decay.enabled:
            return found
        metric = fb.decay.metric or self.evaluation.primary_metric
        floor = fb.decay.floor if fb.decay.floor is not None else self.evaluation.floors.get(metric)
        if fb.decay.reference == "holdout" and floor is None:
            found.append(
                "feedback.decay: judged only against the champion's holdout "
                f"{metric} + max_drop, with no floor; when the holdout was harder than production data "
                "(a time holdout of the window's end, a noisier season) a real worsening never fires. "
                "Use reference: realized (the default) or both, or set feedback.decay.floor"
            )
        if fb.partition.mode != "snapshot" and fb.partition.lookback_days <= fb.delay_days:
            found.append(
                f"feedback.partition.lookback_days {fb.partition.lookback_days} <= delay_days {fb.delay_days}: "
                f"the run for day D reads labels that arrived in (D - {fb.partition.lookback_days}, D], so "
                f"labels of the prediction day D - {fb.delay_days} that arrived on that day or soon after are "
                f"never read; set lookback_days to at least delay_days + 1 ({fb.delay_days + 1})"
            )
        if self.source.partition.mode == "snapshot":
            found.append(
                "source.partition.mode 'snapshot' with feedback: every monitored day scores the whole source, "
                "so prediction days are not independent and decay.days counts the same rows again; use "
                "mode 'column' (a date column) for one prediction day per day"
            )
        elif self.monitoring.window_days > 1 and self.source.partition.mode != "column":
            found.append(
                f"monitoring.window_days {self.monitoring.window_days} with source.partition.mode "
                f"{self.source.partition.mode!r}: a monitored day's predictions cannot be split by day, so "
                "consecutive prediction days overlap; the decay streak counts one prediction day per "
                f"window ({self.monitoring.window_days} days apart). Use mode 'column' for one prediction "
                "day per day"
            )
        return found

    @property
    def scoring_window(self) -> int:
        """Days of source rows a batch scoring run reads: ``scoring.lookback_days``, else the monitoring window."""
        return self.scoring.lookback_days or self.monitoring.window_days

    @property
    def slice_columns(self) -> list[str]:
        """Columns the gate slices on (never features unless listed under ``features.include``)."""
        sl = self.evaluation.slices
        return [c.column for c in sl.columns] if sl is not None else []

    @property
    def primary(self) -> Any:
        return METRICS[self.evaluation.primary_metric]

    @property
    def registered_model_name(self) -> str:
        return self.name

    @property
    def drift_asset_uri(self) -> str:
        """URI of the Airflow Asset the monitoring DAG emits when retraining should happen."""
        return f"mlops://{self.name}/drift"

    def tag_list(self) -> list[str]:
        return ["mlops", f"pipeline:{self.name}", self.problem_type, *self.tags]


# the range a metric can take, where it is bounded (decay bounds outside it are refused)
_METRIC_RANGE: dict[str, tuple[float | None, float | None]] = {
    "roc_auc": (0.0, 1.0),
    "average_precision": (0.0, 1.0),
    "accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "f1_weighted": (0.0, 1.0),
    "brier": (0.0, 1.0),
    "log_loss": (0.0, None),
    "rmse": (0.0, None),
    "mae": (0.0, None),
    "r2": (None, 1.0),
}
