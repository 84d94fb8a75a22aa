"""The data contract: what the champion's training data looked like, checked on every new partition.

:func:`learn` records, from the rows a model trained on, each feature column's (and the target's)
kind, dtype, null share, category set (up to :data:`MAX_CATEGORIES` values) and numeric range;
training logs it with the model as ``contract.json``. :func:`check` compares a new partition with
it and returns every :class:`Violation` with the column, the expected and the observed value.

A contract holds two kinds of rule (``Violation.kind``):

- ``structural``: what must hold for any data the model is given: the columns (a missing one;
  an extra one with ``contract.extra_columns: refuse``; one whose every value is now null), their
  types (a numeric column arriving as text) and the target's validity (no nulls where labels are
  needed). Fatal at every stage.
- ``distribution``: what describes the old data: category sets, numeric ranges, null shares of
  the features. Reported (a warning in ``validate``, the log and ``result.html``), never fatal:
  not in monitoring, where the shift is what drift must see; not in batch scoring, which scores
  unseen categories (:func:`unseen`) and flags them; and not before a retrain, which learns the
  contract afresh on the new window. :func:`diff` states what changed between the champion's
  contract and the challenger's, for the gate's evidence and the model card; the gate, not the
  contract, decides whether the new model is good.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from mlops_core.spec import PipelineSpec

VERSION = 1
MAX_CATEGORIES = 1000  # above this many distinct values only the count is recorded, the set is not checked
MONITORING_STAGE = "monitor_validation"

_FIX = {
    "one_class": "a classifier needs at least two classes: check the source file and the target column",
    "missing": "restore the column upstream, or retrain without it",
    "extra": "drop the column upstream, or set contract.extra_columns: allow",
    "dtype": "fix the values upstream (e.g. 'n/a' text in a numeric column), or retrain",
    "null_share": "fix the source, or relax contract.null_share_margin, or retrain",
    "target_nulls": "drop or fix the unlabelled rows upstream: a label is needed to train and evaluate",
    "empty": "restore the column's values upstream, or retrain without it",
    "new_categories": "relax contract.new_category_share or retrain",
    "out_of_range": "relax contract.range_margin / out_of_range_share or retrain",
}
_WHAT = {
    "one_class": "(the target) has one class",
    "missing": "is missing",
    "extra": "is not in the contract",
    "dtype": "changed type",
    "null_share": "has more nulls",
    "target_nulls": "(the target) has nulls",
    "empty": "has no values",
    "new_categories": "has unseen categories",
    "out_of_range": "has values outside its range",
}


STRUCTURAL = "structural"
DISTRIBUTION = "distribution"
_DISTRIBUTION_RULES = frozenset({"null_share", "new_categories", "out_of_range"})


@dataclass
class Violation:
    """One broken rule: ``fatal`` ones fail validation, the others are reported only.

    ``kind``: :data:`STRUCTURAL` (must hold for any data) or :data:`DISTRIBUTION` (describes
    the old data; never fatal).
    """

    column: str
    rule: str
    expected: str
    observed: str
    fatal: bool
    kind: str = STRUCTURAL

    def __post_init__(self) -> None:
        if self.rule in _DISTRIBUTION_RULES:
            self.kind, self.fatal = DISTRIBUTION, False

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
    from mlops_core.data.columns import feature_columns

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


def _distribution(name: str, entry: dict[str, Any], series: pd.Series, spec: PipelineSpec) -> list[Violation]:
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
                    False,
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
                    False,
                )
            ]
    return []


def _check_column(name: str, entry: dict[str, Any], series: pd.Series, spec: PipelineSpec) -> list[Violation]:
    null_share = float(series.isna().mean()) if len(series) else 0.0
    allowed = min(entry["null_share"] + spec.contract.null_share_margin, 1.0)
    found: list[Violation] = []
    if entry.get("target") and null_share > 0:
        found.append(
            Violation(
                name,
                "target_nulls",
                "a label on every row",
                f"{int(series.isna().sum())} row(s) without one ({_pct(null_share)})",
                True,
            )
        )
    elif null_share >= 1.0 and len(series) and entry["null_share"] < 1.0:
        # not a shift in how often a value is missing: the column has lost its data
        found.append(
            Violation(
                name,
                "empty",
                f"values (trained with {_pct(entry['null_share'])} nulls)",
                "every value null",
                True,
            )
        )
    elif null_share > allowed:
        found.append(
            Violation(
                name,
                "null_share",
                f"at most {_pct(allowed)} nulls (trained with {_pct(entry['null_share'])})",
                f"{_pct(null_share)} nulls",
                False,
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
    return found + _distribution(name, entry, series, spec)


def check(
    contract: dict[str, Any],
    frame: pd.DataFrame,
    spec: PipelineSpec,
    *,
    with_target: bool,
    stage: str | None = None,
) -> list[Violation]:
    """Every way ``frame`` breaks ``contract`` under the spec's tolerances (empty: it holds).

    Only structural violations are fatal, at every ``stage`` (kept for callers; it no longer
    changes a rule's severity).
    """
    del stage
    found: list[Violation] = []
    for name, entry in contract["columns"].items():
        if entry.get("target") and not with_target:
            continue
        if name not in frame.columns:
            found.append(Violation(name, "missing", "column present", "column missing", True))
            continue
        found.extend(_check_column(name, entry, frame[name], spec))
    known = set(contract.get("all_columns") or contract["columns"])
    refuse = spec.contract.extra_columns == "refuse"
    for name in frame.columns:
        if str(name) not in known:
            found.append(Violation(str(name), "extra", "only the trained columns", "an extra column", refuse))
    return found


UNSEEN_COLUMN = "_unseen_categories"
DIFF_LISTED = 20  # categories listed per change (the text gives the count): the diff travels in XCom


def unseen(contract: dict[str, Any] | None, frame: pd.DataFrame) -> tuple[pd.Series, dict[str, int]]:
    """Which rows of ``frame`` hold a feature category the contract's model never trained on.

    ``(flags, per_column)``: a boolean per row (``<NA>`` for every row without a contract, or
    when no categorical feature recorded its set), and the count of such rows per column. The
    model still scores these rows (its one-hot encoder ignores unknown categories: the unseen
    value weighs as none of the known ones); the flag tells which predictions rest on that.
    """
    import pandas as pd

    flags = pd.Series(False, index=frame.index, dtype="boolean")
    judged = False
    per_column: dict[str, int] = {}
    for name, entry in (contract or {}).get("columns", {}).items():
        if entry.get("target") or entry.get("kind") != "categorical" or entry.get("categories") is None:
            continue
        if name not in frame.columns:
            continue
        judged = True
        known = set(entry["categories"])
        values = frame[name]
        new = [v for v in values.dropna().unique() if _key(v) not in known]
        if new:
            hit = values.isin(new).fillna(False).astype(bool)
            per_column[name] = int(hit.sum())
            flags |= hit
    if not judged:
        flags[:] = pd.NA
    return flags, per_column


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What changed from the champion's contract (``old``) to the challenger's (``new``).

    One entry per change, ``{column, change, old, new, text}``: a column added or removed, a
    changed type, new or vanished categories, a moved range, a null share moved by more than one
    percentage point. Empty when either contract is missing or nothing changed. Category lists
    hold the first :data:`DIFF_LISTED` (sorted); ``text`` gives the count.
    """
    if not old or not new:
        return []
    before, after = old.get("columns", {}), new.get("columns", {})
    out: list[dict[str, Any]] = []

    def add(column: str, change: str, was: Any, now: Any, text: str) -> None:
        out.append(
            {"column": column, "change": change, "old": was, "new": now, "text": f"{column!r}: {text}"}
        )

    for name in sorted(set(before) - set(after)):
        add(name, "removed", before[name].get("kind"), None, "no longer a model column")
    for name in sorted(set(after) - set(before)):
        add(name, "added", None, after[name].get("kind"), "a new model column")
    for name in sorted(set(before) & set(after)):
        _diff_column(name, before[name], after[name], add)
    return out


def _diff_column(name: str, was: dict[str, Any], now: dict[str, Any], add: Callable[..., None]) -> None:
    if was.get("dtype_kind") != now.get("dtype_kind"):
        add(
            name,
            "dtype",
            was.get("dtype_kind"),
            now.get("dtype_kind"),
            f"type {was.get('dtype_kind')} -> {now.get('dtype_kind')}",
        )
    old_cats, new_cats = was.get("categories"), now.get("categories")
    if isinstance(old_cats, list) and isinstance(new_cats, list):
        came = sorted(set(new_cats) - set(old_cats))
        went = sorted(set(old_cats) - set(new_cats))
        if came:
            add(
                name,
                "new_categories",
                len(old_cats),
                came[:DIFF_LISTED],
                f"{len(came)} new categor{'y' if len(came) == 1 else 'ies'}, e.g. {came[:5]}",
            )
        if went:
            add(
                name,
                "vanished_categories",
                went[:DIFF_LISTED],
                len(new_cats),
                f"{len(went)} categor{'y' if len(went) == 1 else 'ies'} no longer seen, e.g. {went[:5]}",
            )
    bounds = (was.get("min"), was.get("max"), now.get("min"), now.get("max"))
    if None not in bounds and bounds[:2] != bounds[2:]:
        lo0, hi0, lo1, hi1 = (float(b) for b in bounds if b is not None)
        add(
            name,
            "range",
            [lo0, hi0],
            [lo1, hi1],
            f"range [{_num(lo0)}, {_num(hi0)}] -> [{_num(lo1)}, {_num(hi1)}]",
        )
    n0, n1 = float(was.get("null_share") or 0.0), float(now.get("null_share") or 0.0)
    if abs(n1 - n0) > 0.01:
        add(name, "null_share", n0, n1, f"null share {_pct(n0)} -> {_pct(n1)}")
