"""The data contract: what the champion's training data looked like, checked on every new partition.

:func:`learn` records, from the rows a model trained on, each feature column's (and the target's)
kind, dtype, null share, category set (up to :data:`MAX_CATEGORIES` values) and numeric range;
training logs it with the model as ``contract.json``. :func:`check` compares a new partition with
it and returns every :class:`Violation` with the column, the expected and the observed value.

The tolerances come from the spec's ``contract`` section. Structural rules (a missing column, a
changed type, more nulls) are fatal at every stage. Distribution rules (unseen categories, values
outside the widened range) are fatal before training and scoring, but only reported in the
monitoring stage: a shift is what drift monitoring must see and fire on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec

VERSION = 1
MAX_CATEGORIES = 1000  # above this many distinct values only the count is recorded, the set is not checked
MONITORING_STAGE = "monitor_validation"

_FIX = {
    "missing": "restore the column upstream, or retrain without it",
    "extra": "drop the column upstream, or set contract.extra_columns: allow",
    "dtype": "fix the values upstream (e.g. 'n/a' text in a numeric column), or retrain",
    "null_share": "fix the source, or relax contract.null_share_margin, or retrain",
    "new_categories": "relax contract.new_category_share or retrain",
    "out_of_range": "relax contract.range_margin / out_of_range_share or retrain",
}
_WHAT = {
    "missing": "is missing",
    "extra": "is not in the contract",
    "dtype": "changed type",
    "null_share": "has more nulls",
    "new_categories": "has unseen categories",
    "out_of_range": "has values outside its range",
}


@dataclass
class Violation:
    """One broken rule: ``fatal`` ones fail validation, the others are reported only."""

    column: str
    rule: str
    expected: str
    observed: str
    fatal: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"contract: column {self.column!r} {_WHAT.get(self.rule, self.rule)}: expected {self.expected}, "
            f"observed {self.observed}; {_FIX.get(self.rule, 'retrain')}"
        )


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _num(value: float) -> str:
    return f"{value:.6g}"


def dtype_kind(series: pd.Series) -> str:
    """numeric | boolean | datetime | text: the kinds a model can tell apart."""
    from pandas.api import types

    if types.is_bool_dtype(series):
        return "boolean"
    if types.is_numeric_dtype(series):
        return "numeric"
    if types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def _key(value: Any) -> str:
    """A category as text; 1, 1.0 and numpy's 1 are one category (ints turn to floats when nulls appear)."""
    if isinstance(value, (bool, str)):
        return str(value)
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column(series: pd.Series, kind: str) -> dict[str, Any]:
    import pandas as pd

    entry: dict[str, Any] = {
        "kind": kind,
        "dtype": str(series.dtype),
        "dtype_kind": dtype_kind(series),
        "null_share": float(series.isna().mean()) if len(series) else 0.0,
    }
    values = series.dropna()
    if kind == "numeric":
        import numpy as np

        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        finite = numbers[np.isfinite(numbers)]
        entry["min"] = float(finite.min()) if len(finite) else None
        entry["max"] = float(finite.max()) if len(finite) else None
    else:
        keys = sorted({_key(v) for v in values.unique()})
        entry["n_categories"] = len(keys)
        entry["categories"] = keys if len(keys) <= MAX_CATEGORIES else None
    return entry


def learn(frame: pd.DataFrame, spec: PipelineSpec) -> dict[str, Any]:
    """The contract of ``frame`` (the rows a model trains on), JSON-able."""
    from mlops_core.training import feature_columns

    numeric, categorical = feature_columns(spec, frame)
    columns: dict[str, Any] = {c: _column(frame[c], "numeric") for c in numeric}
    columns.update({c: _column(frame[c], "categorical") for c in categorical})
    if spec.target in frame.columns:
        target_kind = "numeric" if spec.problem_type == "regression" else "categorical"
        columns[spec.target] = {**_column(frame[spec.target], target_kind), "target": True}
    return {
        "version": VERSION,
        "rows": len(frame),
        "all_columns": [str(c) for c in frame.columns],
        "columns": columns,
    }


def widened_range(entry: dict[str, Any], margin: float) -> tuple[float, float]:
    """[min, max] widened by ``margin`` widths each side (a constant column: by ``margin`` * max(|value|, 1))."""
    lo, hi = float(entry["min"]), float(entry["max"])
    width = hi - lo if hi > lo else max(abs(lo), 1.0)
    return lo - margin * width, hi + margin * width


def _distribution(
    name: str, entry: dict[str, Any], series: pd.Series, spec: PipelineSpec, fatal: bool
) -> list[Violation]:
    import pandas as pd

    rows = len(series)
    values = series.dropna()
    if not rows or not len(values):
        return []
    c = spec.contract
    if entry["kind"] == "numeric" and entry.get("min") is not None:
        lo, hi = widened_range(entry, c.range_margin)
        numbers = pd.to_numeric(values, errors="coerce")
        share = float(((numbers < lo) | (numbers > hi)).sum()) / rows
        if share > c.out_of_range_share:
            return [
                Violation(
                    name,
                    "out_of_range",
                    f"at most {_pct(c.out_of_range_share)} of rows outside [{_num(lo)}, {_num(hi)}]"
                    f" (trained on [{_num(entry['min'])}, {_num(entry['max'])}])",
                    f"{_pct(share)} of rows outside (seen [{_num(numbers.min())}, {_num(numbers.max())}])",
                    fatal,
                )
            ]
    if entry["kind"] == "categorical" and entry.get("categories") is not None:
        known = set(entry["categories"])
        # per distinct value, not per row: a partition has millions of rows but few categories
        new = [v for v in values.unique() if _key(v) not in known]
        share = float(values.isin(new).sum()) / rows if new else 0.0
        if share > c.new_category_share:
            sample = sorted(_key(v) for v in new)[:5]
            return [
                Violation(
                    name,
                    "new_categories",
                    f"at most {_pct(c.new_category_share)} of rows outside the {len(known)} trained categories",
                    f"{_pct(share)} of rows, e.g. {sample}",
                    fatal,
                )
            ]
    return []


def _check_column(
    name: str, entry: dict[str, Any], series: pd.Series, spec: PipelineSpec, stage: str
) -> list[Violation]:
    null_share = float(series.isna().mean()) if len(series) else 0.0
    allowed = min(entry["null_share"] + spec.contract.null_share_margin, 1.0)
    found: list[Violation] = []
    if null_share > allowed:
        found.append(
            Violation(
                name,
                "null_share",
                f"at most {_pct(allowed)} nulls (trained with {_pct(entry['null_share'])})",
                f"{_pct(null_share)} nulls",
                True,
            )
        )
    if null_share >= 1.0:
        return found  # an all-null column has no type or values to compare
    kind = dtype_kind(series)
    was = entry.get("dtype_kind", "numeric" if entry["kind"] == "numeric" else "text")
    if (kind == "numeric") != (was == "numeric"):
        sample = [str(v) for v in series.dropna().unique()[:5]]
        found.append(
            Violation(
                name, "dtype", f"{was} ({entry['dtype']})", f"{kind} ({series.dtype}), e.g. {sample}", True
            )
        )
        return found  # the values cannot be compared with the trained ones
    return found + _distribution(name, entry, series, spec, fatal=stage != MONITORING_STAGE)


def check(
    contract: dict[str, Any], frame: pd.DataFrame, spec: PipelineSpec, *, with_target: bool, stage: str
) -> list[Violation]:
    """Every way ``frame`` breaks ``contract`` under the spec's tolerances (empty: it holds)."""
    found: list[Violation] = []
    for name, entry in contract["columns"].items():
        if entry.get("target") and not with_target:
            continue
        if name not in frame.columns:
            found.append(Violation(name, "missing", "column present", "column missing", True))
            continue
        found.extend(_check_column(name, entry, frame[name], spec, stage))
    known = set(contract.get("all_columns") or contract["columns"])
    refuse = spec.contract.extra_columns == "refuse"
    for name in frame.columns:
        if str(name) not in known:
            found.append(Violation(str(name), "extra", "only the trained columns", "an extra column", refuse))
    return found
