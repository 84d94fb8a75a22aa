"""Static catalogues the spec validates against at parse time, without importing heavy libraries.

Each table is checked against the real library by a unit test (``tests/unit/test_catalog.py``),
so a Great Expectations or scikit-learn upgrade that renames something fails a test, not a run.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Literal

ProblemType = Literal["binary", "multiclass", "regression"]

# Great Expectations 1.x expectations a YAML may use, and for each the only arguments it may set,
# with the kind of value each takes (see ARG_KINDS). Nothing else reaches Great Expectations:
# no ``row_condition`` / ``condition_parser`` (a pandas condition is evaluated as code), no
# suite parameters (``{"$PARAMETER": ...}``), no ``result_format``, ``meta`` or ``catch_exceptions``.
_COL = {"column": "column", "mostly": "fraction"}
_BETWEEN = {"min_value": "bound", "max_value": "bound", "strict_min": "flag", "strict_max": "flag"}
_PAIR = {"column_A": "column", "column_B": "column", "mostly": "fraction", "ignore_row_if": "pair_ignore"}
_MULTI = {"column_list": "columns", "mostly": "fraction", "ignore_row_if": "multi_ignore"}

EXPECTATION_ARGS: dict[str, dict[str, str]] = {
    "expect_column_distinct_values_to_be_in_set": {"column": "column", "value_set": "values"},
    "expect_column_distinct_values_to_contain_set": {"column": "column", "value_set": "values"},
    "expect_column_distinct_values_to_equal_set": {"column": "column", "value_set": "values"},
    "expect_column_max_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_mean_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_median_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_min_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_most_common_value_to_be_in_set": {
        "column": "column",
        "value_set": "values",
        "ties_okay": "flag",
    },
    "expect_column_pair_values_a_to_be_greater_than_b": {**_PAIR, "or_equal": "flag"},
    "expect_column_pair_values_to_be_equal": _PAIR,
    "expect_column_proportion_of_non_null_values_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_proportion_of_unique_values_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_stdev_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_sum_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_to_exist": {"column": "column", "column_index": "count"},
    "expect_column_unique_value_count_to_be_between": {"column": "column", **_BETWEEN},
    "expect_column_value_lengths_to_be_between": {**_COL, **_BETWEEN},
    "expect_column_value_lengths_to_equal": {**_COL, "value": "count"},
    "expect_column_value_z_scores_to_be_less_than": {**_COL, "threshold": "number", "double_sided": "flag"},
    "expect_column_values_to_be_between": {**_COL, **_BETWEEN},
    "expect_column_values_to_be_dateutil_parseable": _COL,
    "expect_column_values_to_be_in_set": {**_COL, "value_set": "values"},
    "expect_column_values_to_be_in_type_list": {**_COL, "type_list": "type_names"},
    "expect_column_values_to_be_increasing": {**_COL, "strictly": "flag"},
    "expect_column_values_to_be_decreasing": {**_COL, "strictly": "flag"},
    "expect_column_values_to_be_json_parseable": _COL,
    "expect_column_values_to_be_null": _COL,
    "expect_column_values_to_be_of_type": {**_COL, "type_": "type_name"},
    "expect_column_values_to_be_unique": _COL,
    "expect_column_values_to_match_regex": {**_COL, "regex": "regex"},
    "expect_column_values_to_match_regex_list": {**_COL, "regex_list": "regexes", "match_on": "any_all"},
    "expect_column_values_to_match_strftime_format": {**_COL, "strftime_format": "strftime"},
    "expect_column_values_to_not_be_in_set": {**_COL, "value_set": "values"},
    "expect_column_values_to_not_be_null": _COL,
    "expect_column_values_to_not_match_regex": {**_COL, "regex": "regex"},
    "expect_column_values_to_not_match_regex_list": {**_COL, "regex_list": "regexes"},
    "expect_compound_columns_to_be_unique": _MULTI,
    "expect_multicolumn_sum_to_equal": {**_MULTI, "sum_total": "number"},
    "expect_select_column_values_to_be_unique_within_record": _MULTI,
    "expect_table_column_count_to_be_between": {"min_value": "count", "max_value": "count"},
    "expect_table_column_count_to_equal": {"value": "count"},
    "expect_table_columns_to_match_ordered_list": {"column_list": "columns"},
    "expect_table_columns_to_match_set": {"column_set": "columns", "exact_match": "flag"},
    "expect_table_row_count_to_be_between": {
        "min_value": "count",
        "max_value": "count",
        "strict_min": "flag",
        "strict_max": "flag",
    },
    "expect_table_row_count_to_equal": {"value": "count"},
}
EXPECTATIONS: frozenset[str] = frozenset(EXPECTATION_ARGS)

# Arguments every expectation needs (when it has them); for ranges, at least one bound.
REQUIRED_ARGS = frozenset(
    {"column", "column_A", "column_B", "column_list", "column_set", "value_set", "type_", "type_list"}
    | {"regex", "regex_list", "strftime_format", "value", "sum_total", "threshold"}
)

# Arguments Great Expectations has and a YAML never sets, with why (shown in the error).
FORBIDDEN_ARGS = {
    "row_condition": "a row condition is evaluated as code on the worker",
    "condition_parser": "a row condition is evaluated as code on the worker",
    "result_format": "the package sets it",
    "catch_exceptions": "the package sets it",
    "meta": "not used",
    "notes": "not used",
    "id": "not used",
    "batch_id": "the package sets it",
    "rendered_content": "not used",
    "severity": "not used",
    "windows": "not used",
    "library_metadata": "not used",
}

ARG_KINDS = {
    "column": "a column name",
    "columns": "a list of column names",
    "fraction": "a number from 0 to 1",
    "bound": "a finite number or an ISO date string",
    "flag": "true or false",
    "values": "a list of at most 10000 strings/numbers/booleans",
    "count": "a whole number >= 0",
    "number": "a finite number",
    "type_name": "a type name such as int64, float, str",
    "type_names": "a list of type names",
    "regex": "a regular expression (at most 500 characters)",
    "regexes": "a list of regular expressions",
    "any_all": "'any' or 'all'",
    "strftime": "a strftime format such as %Y-%m-%d",
    "pair_ignore": "'both_values_are_missing', 'either_value_is_missing' or 'neither'",
    "multi_ignore": "'all_values_are_missing', 'any_value_is_missing' or 'never'",
}
_NAME = re.compile(r"^[^\x00-\x1f]{1,256}$")
_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\[\], ]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.+\-Z]{0,20})?$")
_ENUMS = {
    "any_all": {"any", "all"},
    "pair_ignore": {"both_values_are_missing", "either_value_is_missing", "neither"},
    "multi_ignore": {"all_values_are_missing", "any_value_is_missing", "never"},
}


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_regex(v: object) -> bool:
    if not isinstance(v, str) or len(v) > 500:
        return False
    try:
        re.compile(v)
    except re.error:
        return False
    return True


def _value_ok(kind: str, v: object) -> bool:  # noqa: C901 - one branch per kind, flat
    if kind == "column":
        return isinstance(v, str) and bool(_NAME.match(v))
    if kind == "columns":
        return isinstance(v, list) and 0 < len(v) <= 1000 and all(_value_ok("column", c) for c in v)
    if kind == "fraction":
        return _finite(v) and 0.0 <= float(v) <= 1.0  # type: ignore[arg-type]
    if kind == "bound":
        return v is None or _finite(v) or (isinstance(v, str) and bool(_DATE.match(v)))
    if kind == "flag":
        return isinstance(v, bool)
    if kind == "values":
        return (
            isinstance(v, list)
            and len(v) <= 10_000
            and all(
                x is None or isinstance(x, bool) or _finite(x) or (isinstance(x, str) and len(x) <= 1000)
                for x in v
            )
        )
    if kind == "count":
        return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    if kind == "number":
        return _finite(v)
    if kind == "type_name":
        return isinstance(v, str) and bool(_TYPE.match(v))
    if kind == "type_names":
        return isinstance(v, list) and 0 < len(v) <= 50 and all(_value_ok("type_name", t) for t in v)
    if kind == "regex":
        return _is_regex(v)
    if kind == "regexes":
        return isinstance(v, list) and 0 < len(v) <= 50 and all(_is_regex(r) for r in v)
    if kind == "strftime":
        return isinstance(v, str) and 0 < len(v) <= 64 and "%" in v
    return isinstance(v, str) and v in _ENUMS.get(kind, set())


def check_expectation_args(name: str, kwargs: dict[str, object]) -> list[str]:
    """Problems with one expectation's arguments (empty when it may run); each names the fix."""
    allowed = EXPECTATION_ARGS[name]
    problems = []
    for key, value in kwargs.items():
        if key in FORBIDDEN_ARGS:
            problems.append(f"{key!r} is not allowed ({FORBIDDEN_ARGS[key]})")
        elif key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown argument {key!r}{hint}; {name} takes: {', '.join(allowed)}")
        elif not _value_ok(allowed[key], value):
            problems.append(f"{key} must be {ARG_KINDS[allowed[key]]} (got {value!r:.80})")
    missing = sorted(k for k in allowed if k in REQUIRED_ARGS and k not in kwargs)
    if missing:
        problems.append(f"{name} needs {', '.join(missing)}")
    if (
        "min_value" in allowed
        and "value" not in allowed
        and kwargs.get("min_value") is None
        and kwargs.get("max_value") is None
    ):
        problems.append(f"{name} needs min_value or max_value (or both)")
    return problems


@dataclass(frozen=True)
class Metric:
    """A holdout metric: which problems it applies to and which direction is better."""

    name: str
    problems: frozenset[str]
    higher_is_better: bool
    needs_proba: bool = False


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", frozenset({"binary", "multiclass"}), True, needs_proba=True),
        Metric("average_precision", frozenset({"binary"}), True, needs_proba=True),
        Metric("log_loss", frozenset({"binary", "multiclass"}), False, needs_proba=True),
        Metric("brier", frozenset({"binary"}), False, needs_proba=True),
        Metric("accuracy", frozenset({"binary", "multiclass"}), True),
        Metric("balanced_accuracy", frozenset({"binary", "multiclass"}), True),
        Metric("f1", frozenset({"binary"}), True),
        Metric("precision", frozenset({"binary"}), True),
        Metric("recall", frozenset({"binary"}), True),
        Metric("f1_macro", frozenset({"multiclass"}), True),
        Metric("f1_weighted", frozenset({"multiclass"}), True),
        Metric("rmse", frozenset({"regression"}), False),
        Metric("mae", frozenset({"regression"}), False),
        Metric("r2", frozenset({"regression"}), True),
    )
}


# binary metrics whose value before labels arrive can be estimated from calibrated probabilities
# (confidence-based performance estimation, :mod:`mlops_core.monitor.estimate`)
ESTIMABLE_METRICS = (
    "roc_auc",
    "average_precision",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "brier",
    "log_loss",
)


def metrics_for(problem: str) -> list[str]:
    """Metric names that apply to a problem type, in catalogue order."""
    return [name for name, m in METRICS.items() if problem in m.problems]
