"""The ``evaluation`` section: the gate (floors, margin, bootstrap), the holdout, the decision
threshold and the slices a challenger is judged on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.spec.common import SpecModel


class HoldoutSpec(SpecModel):
    """How the held-out rows are chosen: ``random`` (stratified for classification) or ``time`` (latest rows)."""

    strategy: Literal["random", "time"] = "random"
    fraction: float = Field(0.2, ge=0.05, le=0.5)
    column: str | None = None
    seed: int = Field(7, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _time_column(self) -> HoldoutSpec:
        if self.strategy == "time" and not self.column:
            raise ValueError("holdout.strategy 'time' needs holdout.column (rows are ordered by it)")
        return self


class BootstrapSpec(SpecModel):
    """Paired bootstrap of (challenger - champion) on the primary metric."""

    n_resamples: int = Field(1000, ge=100, le=20000)
    confidence: float = Field(0.95, ge=0.5, le=0.999)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class ThresholdSearch(SpecModel):
    """Choose the decision threshold on validation folds of the training rows (never the holdout).

    The threshold is a cut on P(positive_class). ``f1`` / ``balanced_accuracy``: the best of that
    metric. ``recall_at_precision`` (with ``min_precision``): the most recall whose precision stays
    at or above it. ``precision_at_recall`` (with ``min_recall``): the most precision that still
    finds ``min_recall`` of the positives (a target recall).
    """

    optimize: Literal["f1", "balanced_accuracy", "recall_at_precision", "precision_at_recall"] = "f1"
    min_precision: float | None = Field(None, gt=0.0, lt=1.0)  # for recall_at_precision
    min_recall: float | None = Field(None, gt=0.0, lt=1.0)  # for precision_at_recall
    folds: int = Field(3, ge=2, le=10)

    @field_validator("optimize", mode="before")
    @classmethod
    def _alone_is_degenerate(cls, value: Any) -> Any:
        # recall alone is 1.0 at threshold 0 (every row positive), precision alone at the top score
        if value in ("recall", "precision"):
            raise ValueError(
                f"optimize: {value} alone picks a degenerate threshold (recall is 1.0 when every row is "
                "positive); to target a recall use optimize: precision_at_recall with min_recall: 0.8, "
                "to get the most recall at a precision use optimize: recall_at_precision with min_precision"
            )
        return value

    @model_validator(mode="after")
    def _constraint(self) -> ThresholdSearch:
        if (self.optimize == "recall_at_precision") != (self.min_precision is not None):
            raise ValueError("optimize: recall_at_precision needs min_precision (and only it uses it)")
        if (self.optimize == "precision_at_recall") != (self.min_recall is not None):
            raise ValueError("optimize: precision_at_recall needs min_recall (and only it uses it)")
        return self


class SliceColumn(SpecModel):
    """A column to evaluate separately; numeric columns are cut at ``bins`` (edges, ascending)."""

    column: str = Field(min_length=1, max_length=128)
    bins: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(None, min_length=2, max_length=50)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @field_validator("bins")
    @classmethod
    def _ascending(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(b >= a for a, b in zip(value[1:], value, strict=False)):
            raise ValueError("bins must be strictly ascending edges, e.g. [0, 30, 50, 120]")
        return value


# Metrics a slice can be judged on: the holdout metrics plus the fairness ones fairlearn defines.
SLICE_ONLY_METRICS = ("selection_rate", "false_positive_rate", "false_negative_rate")


class SlicesSpec(SpecModel):
    """Fairness and slices in the gate: each slice of each column is scored apart on the holdout.

    A slice whose whole interval (Wilson for proportions such as recall, precision, accuracy;
    bootstrap otherwise) lies below a ``floors`` value (above it for a lower-is-better metric), or
    a ``max_gap`` between the best and the worst slice above its bound, rejects the challenger with
    the slice, the value, the interval and the bound in the reasons. Slices with fewer than
    ``min_rows`` holdout rows are reported as not judged, and so are the metrics that depend on
    the positive class (recall, precision, f1, false_negative_rate, roc_auc, average_precision)
    on a slice with fewer than ``min_positives`` positive rows (``small: reject`` turns either
    into a rejection). Slice-only columns are never model features unless listed under
    ``features.include`` or ``features.categorical``.
    """

    columns: list[SliceColumn] = Field(min_length=1, max_length=10)
    metrics: list[str] = Field(["recall"], min_length=1, max_length=10)
    floors: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]] = {}
    max_gap: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1e12)]] = {}
    min_rows: int = Field(30, ge=1, le=1_000_000)
    # binary: positive rows a slice needs before its positive-class metrics are judged
    min_positives: int = Field(10, ge=0, le=1_000_000)
    small: Literal["report", "reject"] = "report"


class EvaluationSpec(SpecModel):
    """The gate: floors on any metric, and a margin over the champion on the primary metric.

    ``min_improvement`` is in the metric's own units and its better direction: the lower end of
    the bootstrap interval of the improvement must be *above* it, so an equal model never replaces
    the champion.
    """

    primary_metric: str
    floors: dict[str, Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]] = {}
    min_improvement: float = Field(0.0, ge=0.0, le=1e6, allow_inf_nan=False)
    bootstrap: BootstrapSpec = BootstrapSpec()
    holdout: HoldoutSpec = HoldoutSpec()
    # binary only: the probability of positive_class at or above which a row is positive. A
    # number fixes it; {optimize: ...} chooses it on validation folds (ThresholdSearch). The model
    # itself carries it (sklearn's FixedThresholdClassifier), so scoring, the smoke test and
    # endpoints all use it. docs/imbalanced.md explains each option.
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | ThresholdSearch | None = None
    slices: SlicesSpec | None = None
