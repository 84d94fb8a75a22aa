"""A pipeline YAML checked against a sample of its data: ``mlops-airflow validate --data FILE``.

The spec alone cannot know the data's columns or labels; a first run finds out late (at train,
after ingest and validate). This reads the first rows of a local CSV or Parquet file and reports
every mismatch at once, each with its fix: columns the YAML names that the file lacks, rows
without a label, a target with one class, labels that do not fit the problem type, and a ``positive_class`` that is not one
of the labels (a spelling that differs only in case is named).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec

SAMPLE_ROWS = 5_000


def read_sample(path: str | Path, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """The first ``rows`` rows of a CSV (or ``.parquet``) file."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
        first = next(batches, None)
        return first.to_pandas() if first is not None else pd.DataFrame()
    return pd.read_csv(path, nrows=rows)


def _named_columns(spec: PipelineSpec) -> dict[str, list[str]]:
    """Every column the YAML names, by the field that names it."""
    f = spec.features
    named: dict[str, list[str]] = {
        "target": [spec.target],
        "features.include": list(f.include or []),
        "features.categorical": list(f.categorical),
        "features.id_columns": list(f.id_columns),
        "features.time_columns": list(f.time_columns),
        "evaluation.slices.columns": list(spec.slice_columns),
    }
    if spec.source.partition.column:
        named["source.partition.column"] = [spec.source.partition.column]
    if spec.evaluation.holdout.column:
        named["evaluation.holdout.column"] = [spec.evaluation.holdout.column]
    return named


def _column_problems(spec: PipelineSpec, columns: list[str]) -> list[str]:
    problems = []
    have = set(columns)
    for field, names in _named_columns(spec).items():
        missing = [c for c in names if c not in have]
        if missing:
            problems.append(
                f"{field} names {missing}, which the file does not have (its columns: {columns[:30]}"
                f"{' ...' if len(columns) > 30 else ''}): fix the name(s) in the YAML"
            )
    return problems


def _label_problems(spec: PipelineSpec, labels: list[Any], numeric: bool) -> list[str]:
    problems = []
    shown = [str(v) for v in labels[:10]]
    if spec.problem_type == "regression":
        if not numeric:
            problems.append(
                f"problem_type is regression, but target {spec.target!r} is not numeric (values {shown}): "
                "set problem_type: binary or multiclass"
            )
        return problems
    if len(labels) < 2:
        problems.append(
            f"target {spec.target!r} has one class in the sample ({shown}): a classifier needs at least two; "
            "check the file or the target column"
        )
    if spec.problem_type == "binary" and len(labels) > 2:
        problems.append(
            f"problem_type is binary, but target {spec.target!r} has {len(labels)} labels "
            f"({shown}{' ...' if len(labels) > 10 else ''}): set problem_type: multiclass"
        )
    positive = spec.positive_class
    if spec.problem_type == "binary" and positive is not None and labels:
        as_text = {str(v): v for v in labels}
        if str(positive) not in as_text:
            close = [t for t in as_text if t.lower() == str(positive).lower()]
            hint = f"; did you mean {close[0]!r}? (labels are case-sensitive)" if close else ""
            problems.append(
                f"positive_class {positive!r} is not one of target {spec.target!r}'s labels {shown}{hint}"
            )
    return problems


def _unlabelled(spec: PipelineSpec, frame: pd.DataFrame) -> list[str]:
    """Rows whose target is blank: ``validate`` refuses a training partition that holds any (the
    contract's ``target_nulls``), so the first run would fail there (e.g. cancelled flights, whose
    delay was never measured)."""
    blank = int(frame[spec.target].isna().sum())
    if not blank:
        return []
    return [
        f"target {spec.target!r} is blank on {blank} of the {len(frame)} sample rows ({blank / len(frame):.1%}): "
        "validate fails a training partition with unlabelled rows; drop them (or give them a label) "
        "upstream, before the file lands where source.uri points"
    ]


def check(spec: PipelineSpec, path: str | Path, rows: int = SAMPLE_ROWS) -> list[str]:
    """Every mismatch between ``spec`` and the first ``rows`` rows of the file at ``path``."""
    from pandas.api import types

    try:
        frame = read_sample(path, rows)
    except (OSError, ValueError) as err:
        return [f"cannot read {path}: {err}"]
    columns = [str(c) for c in frame.columns]
    problems = _column_problems(spec, columns)
    if spec.target in frame.columns:
        problems += _unlabelled(spec, frame)
        target = frame[spec.target].dropna()
        labels = sorted(target.unique().tolist(), key=str)
        numeric = types.is_numeric_dtype(target) and not types.is_bool_dtype(target)
        problems += _label_problems(spec, labels, numeric)
    return [f"{path}: {p}" for p in problems]
