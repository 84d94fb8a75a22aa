"""Which columns of a table feed the model: the one rule training, the contract and monitoring share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec


class TrainingDataError(ValueError):
    """The data cannot train this spec (missing columns, a single class, too few rows...)."""


def feature_columns(spec: PipelineSpec, df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns: explicit ``include`` or every non-target, non-id, non-time column."""
    from pandas.api import types

    f = spec.features
    # slice columns are there to judge the model by, not to feed it, unless listed in include or
    # in categorical (a column named as a categorical feature is one, slice or not)
    judged_only = [c for c in spec.slice_columns if c not in f.categorical]
    dropped = {spec.target, *f.exclude, *f.id_columns, *f.time_columns, *judged_only}
    if spec.source.partition.column:
        dropped.add(spec.source.partition.column)
    if spec.evaluation.holdout.column:
        dropped.add(spec.evaluation.holdout.column)
    cols = list(f.include) if f.include else [c for c in df.columns if c not in dropped]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise TrainingDataError(
            f"feature columns {missing} are not in the data (columns: {list(df.columns)})"
        )
    if not cols:
        raise TrainingDataError("no feature columns left after removing target, ids, times and exclusions")
    categorical = [
        c
        for c in cols
        if c in f.categorical or not types.is_numeric_dtype(df[c]) or types.is_bool_dtype(df[c])
    ]
    numeric = [c for c in cols if c not in categorical]
    return numeric, categorical
