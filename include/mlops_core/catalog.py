"""Static catalogues the spec validates against at parse time, without importing heavy libraries.

Each table is checked against the real library by a unit test (``tests/unit/test_catalog.py``),
so a Great Expectations or scikit-learn upgrade that renames something fails a test, not a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ProblemType = Literal["binary", "multiclass", "regression"]

# Great Expectations 1.x expectations that run on a pandas batch (snake_case names, as in GX docs).
EXPECTATIONS: frozenset[str] = frozenset(
    {
        "expect_column_distinct_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_distinct_values_to_equal_set",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_most_common_value_to_be_in_set",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_to_be_in_set",
        "expect_column_proportion_of_non_null_values_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_quantile_values_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_to_exist",
        "expect_column_unique_value_count_to_be_between",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_decreasing",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_not_match_regex_list",
        "expect_compound_columns_to_be_unique",
        "expect_multicolumn_sum_to_equal",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
    }
)


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


def metrics_for(problem: str) -> list[str]:
    """Metric names that apply to a problem type, in catalogue order."""
    return [name for name, m in METRICS.items() if problem in m.problems]
