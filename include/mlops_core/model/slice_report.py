"""The slice report and how the gate judges it.

:class:`SliceReport` holds, per ``evaluation.slices`` column, its slices (:class:`SliceStat`: rows,
each metric as ``{value, low, high}``) and per column and metric the gap between the best and the
worst judged slice (:class:`MetricGap`). :func:`check` turns the spec's ``floors``, ``max_gap`` and
``min_rows`` into the reasons the gate rejects on, and :func:`describe` prints the slice table for
the logs. :func:`mlops_core.model.slices.compute` builds the report.

A slice fails a floor only when it is *confidently* below it: the interval's upper bound is under
the floor (its lower bound above it, for a lower-is-better metric). A slice with fewer than
``min_rows`` rows is not judged at all, and its positive-class metrics (:data:`NEEDS_POSITIVES`)
are not judged with fewer than ``min_positives`` positive rows.

No Airflow, nothing heavy at import.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlops_core.spec.catalog import METRICS

if TYPE_CHECKING:
    from mlops_core.spec import SlicesSpec

TOO_FEW = "too few rows"
LISTED = 10  # a column with more slices is logged as a summary plus its failing slices
# metrics of the positive class: judged only on a slice with min_positives positive rows
NEEDS_POSITIVES = frozenset(
    {"recall", "precision", "f1", "false_negative_rate", "roc_auc", "average_precision"}
)

# fairlearn's rates: the better direction (None: neither; selection_rate parity is judged by max_gap)
FAIRNESS_DIRECTION: dict[str, bool | None] = {
    "selection_rate": None,
    "false_positive_rate": False,
    "false_negative_rate": False,
}


def higher_is_better(metric: str) -> bool | None:
    """``True``/``False`` for a metric's better direction, ``None`` for selection_rate (none)."""
    if metric in FAIRNESS_DIRECTION:
        return FAIRNESS_DIRECTION[metric]
    return METRICS[metric].higher_is_better


# --- the report -------------------------------------------------------------------------------


@dataclass
class SliceStat:
    """One slice: its rows, each metric as ``{value, low, high}``, and whether the gate judged it."""

    slice: str
    rows: int
    judged: bool
    metrics: dict[str, dict[str, float | None]]
    champion: dict[str, float | None] | None = None
    note: str | None = None  # "too few rows" when not judged
    resamples: int = 0
    positives: int | None = None  # binary: rows of the positive class in the slice


@dataclass
class MetricGap:
    """Best and worst judged slice of one column on one metric (for selection_rate: highest, lowest)."""

    best: str
    best_value: float
    worst: str
    worst_value: float
    gap: float
    judged_slices: int
    max_gap: float | None = None
    champion_gap: float | None = None


@dataclass
class SliceReport:
    """Per column, its slices; per column and metric, the gap; and what the gate makes of them."""

    metrics: list[str]
    min_rows: int
    small: str
    confidence: float
    n_resamples: int
    overall: dict[str, float | None]
    columns: dict[str, list[SliceStat]]
    gaps: dict[str, dict[str, MetricGap]] = field(default_factory=dict)
    champion_overall: dict[str, float | None] | None = None
    champion_version: str | None = None
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    min_positives: int = 0
    # each metric's interval: "wilson" or "bootstrap"
    interval_methods: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceReport:
        d = dict(data)
        d["columns"] = {c: [SliceStat(**s) for s in stats] for c, stats in d["columns"].items()}
        d["gaps"] = {c: {m: MetricGap(**g) for m, g in per.items()} for c, per in d.get("gaps", {}).items()}
        return cls(**d)

    def mlflow_metrics(self) -> dict[str, float]:
        """``slice.<slice>.<metric>``, ``slice.<slice>.rows`` and ``slice_gap.<column>.<metric>``,
        named with MLflow's portable characters only (``sex=F`` -> ``sex_F``)."""
        out: dict[str, float] = {}
        used: dict[str, str] = {}
        used_columns: dict[str, str] = {}
        for column, stats in self.columns.items():
            for s in stats:
                base = "slice." + _key(s.slice, used)
                out[f"{base}.rows"] = float(s.rows)
                for m, v in s.metrics.items():
                    if v["value"] is not None:
                        out[f"{base}.{m}"] = float(v["value"])
            gap_base = "slice_gap." + _key(column, used_columns)
            for m, g in self.gaps.get(column, {}).items():
                out[f"{gap_base}.{m}"] = float(g.gap)
        return out


def _key(label: str, used: dict[str, str]) -> str:
    """``label`` in MLflow's portable metric-name characters; a collision gets a short hash."""
    key = re.sub(r"[^A-Za-z0-9_.\-]+", "_", label).strip("_")[:180] or "_"
    if used.setdefault(key, label) != label:
        key = f"{key}_{hashlib.sha1(label.encode()).hexdigest()[:8]}"
        used[key] = label
    return key


# --- check and describe -----------------------------------------------------------------------


def _num(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if x == 0 or abs(x) >= 0.1 else f"{x:.{digits}g}"


def _apart(value: float, bound: float) -> tuple[str, str]:
    """Both numbers with 2 decimals, or more when 2 would print a failing value as its bound."""
    for digits in (2, 4, 6):
        a, b = _num(value, digits), _num(bound, digits)
        if a != b:
            break
    return a, b


def _conf(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def judged_on(s: SliceStat, metric: str, min_positives: int) -> bool:
    """Whether ``metric`` of slice ``s`` is judged: enough rows, a value, and for a positive-class
    metric enough positive rows."""
    if not s.judged or s.metrics[metric]["value"] is None:
        return False
    return metric not in NEEDS_POSITIVES or s.positives is None or s.positives >= min_positives


def _gap(stats: list[SliceStat], metric: str, min_positives: int) -> MetricGap | None:
    defined = sorted(
        (
            (float(s.metrics[metric]["value"] or 0.0), i, s)
            for i, s in enumerate(stats)
            if judged_on(s, metric, min_positives)
        ),
        key=lambda t: (t[0], t[1]),
    )
    if len(defined) < 2:
        return None
    # two distinct slices, even when every value ties (a slice is never compared with itself)
    lowest, highest = defined[0], defined[-1]
    best, worst = (lowest, highest) if higher_is_better(metric) is False else (highest, lowest)
    champ = [v for _, _, s in defined if s.champion and (v := s.champion.get(metric)) is not None]
    return MetricGap(
        best=best[2].slice,
        best_value=best[0],
        worst=worst[2].slice,
        worst_value=worst[0],
        gap=round(highest[0] - lowest[0], 6),
        judged_slices=len(defined),
        champion_gap=round(max(champ) - min(champ), 6) if len(champ) == len(defined) else None,
    )


# why a metric can be undefined on a slice's rows
_UNDEFINED = {
    "recall": "no positive rows",
    "false_negative_rate": "no positive rows",
    "false_positive_rate": "no negative rows",
    "precision": "no positive predictions",
    "f1": "no positive rows or predictions",
    "r2": "fewer than 2 rows",
}


def _not_judged(s: SliceStat, sl: SlicesSpec) -> list[str]:
    """Reasons about a slice as such: too few rows, a judged metric undefined on it, or too few
    positive rows for a positive-class metric."""
    if not s.judged:
        return [f"slice {s.slice}: {s.rows} rows < min_rows {sl.min_rows}, not judged"]
    out = [
        f"slice {s.slice}: {m} is undefined on its {s.rows} rows ({_UNDEFINED.get(m, 'one class only')}), "
        "not judged"
        for m in sl.floors
        if s.metrics[m]["value"] is None
    ]
    thin = [
        m
        for m in sl.metrics
        if m in NEEDS_POSITIVES
        and s.metrics[m]["value"] is not None
        and s.positives is not None
        and s.positives < sl.min_positives
    ]
    if thin:
        out.append(
            f"slice {s.slice}: {s.positives} positive rows < min_positives {sl.min_positives}, "
            f"{', '.join(thin)} not judged"
        )
    return out


def _floor_violations(s: SliceStat, sl: SlicesSpec, report: SliceReport) -> list[str]:
    """Floors the slice is confidently on the wrong side of: its whole interval (the point value
    when the interval is undefined) is below a minimum, or above a maximum."""
    out = []
    for m, floor in sl.floors.items():
        if not judged_on(s, m, sl.min_positives):
            continue
        value, low, high = (s.metrics[m][k] for k in ("value", "low", "high"))
        assert value is not None  # judged_on
        at_most = higher_is_better(m) is False  # selection_rate (no direction): a minimum
        bound = (value if low is None else low) if at_most else (value if high is None else high)
        if (bound <= floor) if at_most else (bound >= floor):
            continue
        v, f = _apart(value, floor)
        method = report.interval_methods.get(m, "bootstrap")
        interval = (
            f"{_conf(report.confidence)} {method} interval [{_num(low)}, {_num(high)}] "
            f"{'above' if at_most else 'below'} it"
            if low is not None and high is not None
            else "interval undefined"
        )
        evidence = f"{s.rows} rows" + (f", {s.positives} positive" if s.positives is not None else "")
        out.append(f"slice {s.slice}: {m} {v} {'>' if at_most else '<'} floor {f} ({interval}, {evidence})")
    return out


def _gap_reason(column: str, metric: str, g: MetricGap, version: str | None) -> tuple[bool, str]:
    bound = float(g.max_gap or 0.0)
    gap, limit = _apart(g.gap, bound)
    ok = g.gap <= bound
    if g.gap == 0:
        text = (
            f"slices of {column}: {metric} gap 0 (all {g.judged_slices} judged slices at "
            f"{_num(g.best_value)}) <= max_gap {limit}"
        )
    else:
        text = (
            f"slices of {column}: {metric} gap {gap} between {g.best} ({_num(g.best_value)}) and "
            f"{g.worst} ({_num(g.worst_value)}) {'<=' if ok else '>'} max_gap {limit}"
        )
    if g.champion_gap is not None:
        text += f" (champion{' v' + version if version else ''}: {_num(g.champion_gap)})"
    return ok, text


def _compact(column: str, notes: list[str], keep: int = 3) -> list[str]:
    """Up to ``keep`` not-judged notes of a column as they are; more as one line naming the slices."""
    if len(notes) <= keep:
        return notes
    names = [n.split(":", 1)[0].removeprefix("slice ") for n in notes]
    rows = sum(" rows < min_rows " in n for n in notes)
    positives = sum(" positive rows < min_positives " in n for n in notes)
    undefined = len(notes) - rows - positives
    kinds = ", ".join(
        f"{k} {what}"
        for k, what in (
            (rows, "below min_rows"),
            (positives, "below min_positives"),
            (undefined, "undefined"),
        )
        if k
    )
    shown = ", ".join(names[:8]) + (f", … +{len(names) - 8} more" if len(names) > 8 else "")
    return [f"slices of {column}: {len(notes)} not judged ({kinds}): {shown}"]


def _check_column(
    column: str, stats: list[SliceStat], sl: SlicesSpec, report: SliceReport
) -> tuple[list[str], list[str], dict[str, MetricGap]]:
    violations: list[str] = []
    notes: list[str] = []
    small_notes: list[str] = []
    floor_failures = 0
    for s in stats:
        small = _not_judged(s, sl)
        if sl.small == "reject":
            violations += [f"{r} (small: reject)" for r in small]
        else:
            small_notes += small
        failed = _floor_violations(s, sl, report)
        floor_failures += len(failed)
        violations += failed
    notes += _compact(column, small_notes)
    gaps = {m: g for m in report.metrics if (g := _gap(stats, m, sl.min_positives)) is not None}
    for m, bound in sl.max_gap.items():
        if m not in gaps:
            judged = sum(judged_on(s, m, sl.min_positives) for s in stats)
            notes.append(f"slices of {column}: {m} gap not judged ({judged} judged slice(s) with a value)")
            continue
        gaps[m].max_gap = bound
        ok, text = _gap_reason(column, m, gaps[m], report.champion_version)
        (notes if ok else violations).append(text)
    judged = sum(s.judged for s in stats)
    if sl.floors and judged and not floor_failures:
        notes.append(f"slices of {column}: {judged} of {len(stats)} slices judged, every slice floor holds")
    return violations, notes, gaps


def check(report: SliceReport, sl: SlicesSpec) -> SliceReport:
    """Judge the report against the spec: which slices count, their floors, each column's gaps.

    Recomputed from the slice values and the spec (never taken from the report's own lists), so
    the gate applies the YAML it runs with.
    """
    violations: list[str] = []
    notes: list[str] = []
    columns: dict[str, list[SliceStat]] = {}
    gaps: dict[str, dict[str, MetricGap]] = {}
    report = replace(report, min_positives=sl.min_positives)
    for column, given in report.columns.items():
        columns[column] = [
            replace(s, judged=s.rows >= sl.min_rows, note=None if s.rows >= sl.min_rows else TOO_FEW)
            for s in given
        ]
        bad, fine, gaps[column] = _check_column(column, columns[column], sl, report)
        violations += bad
        notes += fine
    return replace(
        report,
        min_rows=sl.min_rows,
        small=sl.small,
        columns=columns,
        gaps=gaps,
        violations=violations,
        notes=notes,
    )


def _slice_line(s: dict[str, Any]) -> str:
    parts = []
    for m, v in s["metrics"].items():
        if v["value"] is None:
            parts.append(f"{m} undefined")
            continue
        part = f"{m} {_num(v['value'])}"
        if v["low"] is not None:
            part += f" [{_num(v['low'])}, {_num(v['high'])}]"
        champ = (s.get("champion") or {}).get(m)
        parts.append(part + (f" (champion {_num(champ)})" if champ is not None else ""))
    flag = "" if s["judged"] else f", not judged: {s.get('note') or TOO_FEW}"
    positives = f", {s['positives']} positive" if s.get("positives") is not None else ""
    return f"  {s['slice']}: {s['rows']} rows{positives}{flag}; " + ", ".join(parts)


def describe(report: dict[str, Any]) -> list[str]:
    """A slice table for logs: per column, each slice's rows and metrics with their intervals.

    A column with more than :data:`LISTED` slices shows a summary and only its failing slices
    (every slice is in ``slices.json`` and on the model card).
    """
    lines = []
    failing = " ".join(report.get("violations") or [])
    limits = f"min_rows {report.get('min_rows')}"
    if report.get("min_positives"):
        limits += f", min_positives {report.get('min_positives')}"
    for column, stats in report.get("columns", {}).items():
        if len(stats) <= LISTED:
            lines.append(f"slices of {column} ({limits}):")
            lines += [_slice_line(s) for s in stats]
            continue
        bad = [s for s in stats if f"slice {s['slice']}:" in failing]
        judged = sum(bool(s["judged"]) for s in stats)
        lines.append(
            f"slices of {column} ({limits}): {len(stats)} slices, {judged} judged, {len(bad)} failing"
            + (" (listed below; all of them in slices.json and on the model card)" if bad else "")
        )
        lines += [_slice_line(s) for s in bad]
    return lines
