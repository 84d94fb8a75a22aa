"""Evaluation and the promotion gate.

Challenger and champion are scored on the same holdout rows. The margin over the champion is
judged by a *paired* bootstrap: the same resampled rows score both models, and the interval of
the improvement (in the metric's better direction) must lie above ``min_improvement``. An equal
model therefore never replaces the champion, and a noisy small win does not either. A binary
challenger with recall or precision 0 on the positive class is refused (a ROC AUC floor alone passes
such a model on a rare class). With
``evaluation.slices``, a slice below its floor, a gap between slices above ``max_gap`` (or a small
slice under ``small: reject``) rejects too (:mod:`mlops_core.model.slices`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core.model.metrics import Scored, _subset, all_metrics, metric, score  # noqa: F401 (the gate's names)
from mlops_core.spec.catalog import METRICS

if TYPE_CHECKING:
    import numpy as np

    from mlops_core.spec import PipelineSpec


@dataclass
class Bootstrap:
    """Interval of the improvement (challenger better > 0) on the primary metric."""

    delta: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_valid: int


def paired_bootstrap(
    name: str,
    problem: str,
    y: np.ndarray,
    challenger: Scored,
    champion: Scored,
    *,
    positive: Any = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Bootstrap:
    """Percentile interval of improvement = sign * (metric(challenger) - metric(champion)).

    Both models are scored on the *same* resampled rows each time (paired), which removes the
    holdout's own sampling noise from the comparison. Resamples where the metric is undefined are
    dropped and counted; a constant difference gives a zero-width interval.
    """
    import numpy as np

    sign = 1.0 if METRICS[name].higher_is_better else -1.0
    y = np.asarray(y)
    delta = sign * (
        metric(name, problem, y, challenger, positive) - metric(name, problem, y, champion, positive)
    )
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y), size=len(y))
        a = metric(name, problem, y[idx], _subset(challenger, idx), positive)
        b = metric(name, problem, y[idx], _subset(champion, idx), positive)
        if not (math.isnan(a) or math.isnan(b)):
            diffs.append(sign * (a - b))
    if not diffs:
        return Bootstrap(delta, math.nan, math.nan, confidence, n_resamples, 0)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(diffs), [alpha, 1.0 - alpha])
    return Bootstrap(float(delta), float(low), float(high), confidence, n_resamples, len(diffs))


@dataclass
class GateDecision:
    """Whether the challenger becomes champion, and every reason why (or why not)."""

    promote: bool
    reasons: list[str]
    primary_metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    bootstrap: dict[str, Any] | None = None
    floors: dict[str, float] = field(default_factory=dict)
    forced: bool = False
    forced_by: str | None = None
    force_reason: str | None = None
    # the slice report (mlops_core.model.slice_report.SliceReport.to_dict) as the gate judged it, with violations
    slices: dict[str, Any] | None = None
    # binary: the threshold on P(positive_class) the saved model applies (None: its own predict)
    threshold: float | None = None
    positive_class: Any = None
    # what changed from the champion's data contract to the challenger's (lifecycle._contract_changes):
    # evidence shown with the decision, never a reason by itself
    contract_changes: dict[str, Any] | None = None

    @property
    def outcome(self) -> str:
        return ("forced" if self.forced else "promote") if self.promote else "reject"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        return cls(**{k: v for k, v in data.items() if k != "outcome"})

    def describe(self) -> str:
        head = f"gate decision: {self.outcome.upper()} on {self.primary_metric}"
        if self.positive_class is not None:
            from mlops_core.model import threshold

            head += f"; decision threshold {threshold.describe(self.threshold, self.positive_class)}"
        lines = [head] + [f"  - {r}" for r in self.reasons] + self._metric_lines()
        if self.slices:
            from mlops_core.model.slice_report import describe

            lines += [f"  {line}" for line in describe(self.slices)]
        changes = (self.contract_changes or {}).get("changes")
        if self.contract_changes is not None:
            lines.append(f"  data contract ({self.contract_changes.get('note')}):")
            lines += [f"    - {c.get('text')}" for c in changes or []] or ["    - no change"]
        return "\n".join(lines)

    def _metric_lines(self) -> list[str]:
        """Every metric of the challenger, with the champion's and the floor where there is one."""
        if not self.challenger:
            return []
        against = f"champion v{self.champion_version}" if self.champion_version else "champion"
        lines = [
            f"  metrics (challenger; {against}; floor):"
            if self.champion
            else "  metrics (challenger; floor):"
        ]
        for name in sorted(self.challenger, key=lambda n: (n != self.primary_metric, n)):
            parts = [f"{self.challenger[name]:.4f}"]
            if self.champion and name in self.champion:
                parts.append(f"{against} {self.champion[name]:.4f}")
            if name in self.floors:
                better = METRICS[name].higher_is_better if name in METRICS else True
                parts.append(f"floor {'>=' if better else '<='} {self.floors[name]:g}")
            primary = " (primary)" if name == self.primary_metric else ""
            lines.append(f"    {name}{primary}: {', '.join(parts)}")
        return lines


def _floor_reasons(spec: PipelineSpec, challenger: dict[str, float]) -> tuple[bool, list[str]]:
    ok, reasons = True, []
    for name, floor in spec.evaluation.floors.items():
        value = challenger.get(name, math.nan)
        better = METRICS[name].higher_is_better
        passed = not math.isnan(value) and (value >= floor if better else value <= floor)
        ok &= passed
        op = ">=" if better else "<="
        reasons.append(f"floor {name} {op} {floor:g}: {value:.4f} {'passes' if passed else 'FAILS'}")
    return ok, reasons


def _positive_class_reasons(
    spec: PipelineSpec, challenger: dict[str, float], positive: Any
) -> tuple[bool, list[str]]:
    """A binary model that never finds the positive class (recall 0), or whose positive predictions
    are all wrong (precision 0), is refused whatever its ROC AUC or accuracy: on a rare class those
    stay high while the model is useless. ``force_promote`` (with a reason) is the way past it."""
    if spec.problem_type != "binary":
        return True, []
    zero = [m for m in ("recall", "precision") if challenger.get(m) == 0.0]
    if not zero:
        return True, []
    what = " and ".join(f"{m} 0.000" for m in zero)
    label = positive if positive is not None else spec.positive_class
    name = f"the positive class {label!r}" if label is not None else "the positive class"
    return False, [
        f"REFUSED: the challenger never finds {name} on the holdout ({what}); ROC AUC and accuracy "
        "can pass while it does. Set "
        "evaluation.threshold (e.g. {optimize: precision_at_recall, min_recall: 0.5}), a class_weight, "
        "and a floor on recall or average_precision (docs/imbalanced.md)"
    ]


def _slice_reasons(
    spec: PipelineSpec, report: dict[str, Any] | None
) -> tuple[bool, list[str], dict[str, Any] | None]:
    """(passed, reasons, the report as judged now): a slice violation rejects like a failed floor.

    The checks are re-run on the report's values against this spec, whatever lists it carries.
    """
    from mlops_core.model import slice_report

    sl = spec.evaluation.slices
    if sl is None:
        return True, [], None
    if not report:
        return (
            False,
            [
                "evaluation.slices is set but the evaluation has no slice report (evaluated before slices "
                "were configured?); run evaluate again"
            ],
            None,
        )
    judged = slice_report.check(slice_report.SliceReport.from_dict(report), sl)
    return not judged.violations, judged.violations + judged.notes, judged.to_dict()


def _champion_reasons(
    spec: PipelineSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    boot: Bootstrap | None,
    champion_version: str | None,
    champion_error: str | None,
) -> tuple[bool, list[str]]:
    """(beats, reasons): the challenger against the champion by the paired bootstrap's lower bound;
    no champion yet passes (floors only), a champion that could not score this holdout does not."""
    name = spec.evaluation.primary_metric
    margin = spec.evaluation.min_improvement
    ok = True
    reasons: list[str] = []
    if champion_error:
        ok = False
        reasons.append(
            f"champion v{champion_version} could not score this holdout ({champion_error}); "
            "promote with force_promote if the change of data is intended"
        )
    elif champion is None or boot is None:
        reasons.append(f"no champion yet: floors only ({name} = {challenger.get(name, math.nan):.4f})")
    elif math.isnan(boot.low):
        ok = False
        reasons.append(
            f"bootstrap undefined: {name} could not be computed on any resample (holdout too small or one class)"
        )
    else:
        beats = boot.low > margin
        ok &= beats
        reasons.append(
            f"challenger vs champion v{champion_version} on {name}: improvement {boot.delta:+.4f}, "
            f"{boot.confidence:.0%} paired-bootstrap interval [{boot.low:+.4f}, {boot.high:+.4f}] "
            f"({boot.n_valid}/{boot.n_resamples} resamples); required lower bound > {margin:g}: "
            + ("met" if beats else "NOT met, the champion stays")
        )
    return ok, reasons


def decide(
    spec: PipelineSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    boot: Bootstrap | None,
    *,
    champion_version: str | None = None,
    champion_error: str | None = None,
    force: bool = False,
    forced_by: str | None = None,
    force_reason: str | None = None,
    slices: dict[str, Any] | None = None,
    threshold: float | None = None,
    positive_class: Any = None,
) -> GateDecision:
    """Apply floors, then the bootstrap margin over the champion (none on the first run), then the
    slice checks (``evaluation.slices``, on the slice report ``slices``), then the override."""
    name = spec.evaluation.primary_metric
    ok, reasons = _floor_reasons(spec, challenger)
    finds, why = _positive_class_reasons(spec, challenger, positive_class)
    ok &= finds
    reasons += why
    beats, why = _champion_reasons(spec, challenger, champion, boot, champion_version, champion_error)
    ok &= beats
    reasons += why
    judged = None
    if spec.evaluation.slices is not None:
        passed, slice_reasons, judged = _slice_reasons(spec, slices)
        ok &= passed
        reasons += slice_reasons
    decision = GateDecision(
        promote=ok,
        reasons=reasons,
        primary_metric=name,
        challenger=challenger,
        champion=champion,
        champion_version=champion_version,
        bootstrap=asdict(boot) if boot else None,
        floors=dict(spec.evaluation.floors),
        slices=judged,
        threshold=threshold,
        positive_class=positive_class,
    )
    if force:
        if not (force_reason and force_reason.strip()):
            raise ValueError(
                "force_promote needs a reason: trigger again with params.reason set (it is recorded on the model version)"
            )
        decision.reasons.append(
            f"FORCED by {forced_by or 'unknown'}: {force_reason.strip()} (gate alone would {'promote' if ok else 'reject'})"
        )
        decision.promote, decision.forced = True, True
        decision.forced_by, decision.force_reason = forced_by, force_reason.strip()
    return decision
