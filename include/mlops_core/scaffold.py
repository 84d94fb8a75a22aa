"""``mlops-airflow new``: a first pipeline YAML from a CSV's header and a sample of its rows.

Reads at most :data:`SAMPLE_ROWS` rows with the standard library (no pandas), guesses what a person
would write first (the problem type from the target's values, id and date columns from names and
values; expectations for the row count, the label set and unique ids) and returns YAML
text that :func:`mlops_core.spec.parse_spec` accepts. Everything guessed is marked for review.

With a date column, one more pass over the whole file reads that column only: ``start_date`` is
its first day (so a run, a backfill or ``dags test`` for any day of the data is inside the DAG's
dates), and the row-count expectation follows the rows per day it counts (the smallest window a
step validates, batch scoring's and monitoring's default, is one day). Index-like columns (an
unnamed or ``rownames`` column, 0..n-1 or 1..n in file order) and numeric copies of the date
(epoch seconds or days, ``YYYYMMDD``, spreadsheet serials: any exact linear function of the
time) go to ``features.exclude``.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from mlops_core.data.dates import day_of
from mlops_core.spec import parse_spec

SAMPLE_ROWS = 5000
# a text column with more distinct values than both of these (in the sample) is left out, not one-hot
ID_LIKE_MIN_VALUES = 50
ID_LIKE_SHARE = 0.2
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|^key$)", re.I)
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
_INDEX_NAME = re.compile(r"^(unnamed: \d+|rownames|row\.names|index|level_0)$", re.I)
ROW_COUNT_FLOOR = 100  # the row-count expectation without a date column (at most half the sample)


class ScaffoldError(ValueError):
    """The CSV or the arguments cannot make a pipeline; the message says what to change."""


@dataclass
class Column:
    name: str
    values: list[str] = field(default_factory=list)

    @property
    def present(self) -> list[str]:
        return [v for v in self.values if v.strip() != ""]

    @property
    def numeric(self) -> bool:
        present = self.present
        if not present:
            return False
        try:
            for v in present:
                float(v)
        except ValueError:
            return False
        return True

    @property
    def is_date(self) -> bool:
        present = self.present
        return bool(present) and all(_DATE.match(v.strip()) for v in present)

    @property
    def unique(self) -> bool:
        present = self.present
        return len(present) == len(self.values) and len(set(present)) == len(present)


def _read(path: Path) -> list[Column]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise ScaffoldError(f"{path} is empty: a CSV with a header line is needed")
            # as the lake reads it: an empty name is "Unnamed: <position>" (pandas' and strict reading's)
            columns = [Column(name.strip() or f"Unnamed: {i}") for i, name in enumerate(header)]
            for i, row in enumerate(reader):
                if i >= SAMPLE_ROWS:
                    break
                for col, value in zip(columns, row, strict=False):
                    col.values.append(value)
    except UnicodeDecodeError as err:
        raise ScaffoldError(f"{path} is not UTF-8 text ({err}); save it as UTF-8 CSV") from None
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScaffoldError(f"{path}: column names {dupes} appear more than once; rename them")
    if not any(c.values for c in columns):
        raise ScaffoldError(f"{path} has a header but no rows; the scaffold needs rows to guess types")
    return columns


def _integers(col: Column) -> list[int] | None:
    values = col.values
    if not values or len(col.present) != len(values):
        return None
    try:
        return [int(v) for v in values]
    except ValueError:
        return None


def _index_like(col: Column) -> bool:
    """A row index written into the file: 0..n-1 or 1..n in file order, or an index's name with unique values."""
    numbers = _integers(col)
    if (
        numbers is not None
        and numbers[0] in (0, 1)
        and all(b - a == 1 for a, b in zip(numbers, numbers[1:], strict=False))
    ):
        return True
    return bool(_INDEX_NAME.match(col.name)) and col.unique


def _stamp(text: str) -> float | None:
    """Seconds since the epoch (UTC; a time without zone as written), for an accepted date."""
    from datetime import UTC, datetime

    day = day_of(text)
    if day is None:
        return None
    stamp = datetime.fromisoformat(text.strip())
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _date_copy(col: Column, when: Column) -> bool:
    """``col`` is a numeric copy of the date ``when``: YYYYMMDD, or an exact linear function of the time."""
    pairs = []
    for x, t in zip(col.values, when.values, strict=False):
        stamp = _stamp(t) if t.strip() else None
        if x.strip() and stamp is not None:
            try:
                pairs.append((stamp, float(x), day_of(t)))
            except ValueError:
                return False
    if len({p[0] for p in pairs}) < 3:
        return False
    if all(d is not None and v == d.year * 10000 + d.month * 100 + d.day for _, v, d in pairs):
        return True
    # linear in the time (epoch seconds, ms) or in the day (epoch days, ordinals, spreadsheet serials)
    return _linear([(t, x) for t, x, _ in pairs]) or _linear([(d.toordinal(), x) for _, x, d in pairs if d])


def _linear(points: list[tuple[float, float]]) -> bool:
    """Whether every ``x`` is exactly ``a + b * t`` (b != 0) over at least 3 distinct ``t``."""
    if len({t for t, _ in points}) < 3:
        return False
    (t0, x0), (t1, x1) = min(points), max(points)
    if t1 == t0 or x1 == x0:
        return False
    slope = (x1 - x0) / (t1 - t0)
    scale = max(abs(x0), abs(x1), 1.0)
    return all(math.isclose(x, x0 + slope * (t - t0), rel_tol=1e-9, abs_tol=1e-9 * scale) for t, x in points)


def _days(path: Path, column: str) -> tuple[Any, list[int]]:
    """The first day of ``column`` over the whole file, and the rows of each day that has any."""
    counts: dict[Any, int] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [n.strip() or f"Unnamed: {i}" for i, n in enumerate(next(reader))]
        at = header.index(column)
        for row in reader:
            day = day_of(row[at]) if at < len(row) else None
            if day is not None:
                counts[day] = counts.get(day, 0) + 1
    return (min(counts) if counts else None), sorted(counts.values())


def _row_count(per_day: list[int], sampled: int) -> int:
    """Half the rows of a thin day (the 10th percentile of the days seen), at least 1; without
    dates, :data:`ROW_COUNT_FLOOR`, at most half the sampled rows."""
    if per_day:
        return max(1, per_day[len(per_day) // 10] // 2)
    return max(1, min(ROW_COUNT_FLOOR, sampled // 2))


def _roles(others: list[Column]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(ids, dates, left out of the features, categorical) among the non-target columns."""
    by_name = {c.name: c for c in others}
    ids = [c.name for c in others if _ID_NAME.search(c.name) and c.unique]
    dates = [c.name for c in others if c.is_date]
    left_out = [c.name for c in others if c.name not in ids + dates and c.numeric and _index_like(c)]
    if dates:
        left_out += [
            c.name
            for c in others
            if c.name not in ids + dates + left_out and c.numeric and _date_copy(c, by_name[dates[0]])
        ]
    text = [c for c in others if c.name not in ids + dates + left_out and not c.numeric and c.present]
    left_out += [c.name for c in text if _id_like_text(c)]
    categorical = [c.name for c in text if c.name not in left_out]
    return ids, dates, left_out, categorical


def _id_like_text(col: Column) -> bool:
    """Text with too many values to be a category: a label per row or nearly (an aircraft's tail
    number, a name, a ticket number). One-hot encoded, each value would be a column seen a handful
    of times; left out, the person can add it back (or engineer a coarser feature from it)."""
    distinct = len(set(col.present))
    return distinct > ID_LIKE_MIN_VALUES and distinct > ID_LIKE_SHARE * len(col.present)


def _identifier_hint(wordy: list[Column], hints: list[str] | None) -> None:
    """Say which text columns were left out as identifiers, and how to keep one."""
    if wordy and hints is not None:
        hints.append(
            f"left out {', '.join(c.name for c in wordy)} (features.exclude): text with "
            f"{', '.join(str(len(set(c.present))) for c in wordy)} distinct values in {SAMPLE_ROWS} sample rows "
            "is an identifier, not a category; remove it from exclude to one-hot it anyway"
        )


def _problem_type(target: Column) -> tuple[str, list[Any]]:
    present = target.present
    if not present:
        raise ScaffoldError(f"target {target.name!r} is empty in the sample; choose the label column")
    labels = sorted(set(present))
    if target.numeric and len(labels) > 20:
        return "regression", []
    if len(labels) == 2:
        return "binary", labels
    if len(labels) <= 50:
        return "multiclass", labels
    raise ScaffoldError(
        f"target {target.name!r} has {len(labels)} distinct non-numeric values in the sample: too many "
        "classes for a classifier; choose another target or pass --problem-type"
    )


RARE_SHARE = 0.20  # a binary target whose rarer class is below this share is treated as imbalanced


def _rare(target: Column, labels: list[str], kind: str) -> tuple[str, float] | None:
    """(the rarer label, its share of the sample) of a binary target when it is under
    :data:`RARE_SHARE`, else ``None``."""
    if kind != "binary":
        return None
    present = [v for v in target.values if v.strip() != ""]
    counts = {label: present.count(label) for label in labels}
    label = min(labels, key=lambda v: (counts[v], v))
    share = counts[label] / max(1, len(present))
    return (label, share) if share < RARE_SHARE else None


def _imbalanced(spec: dict[str, Any], rare: tuple[str, float] | None, hints: list[str] | None) -> None:
    """Safe defaults for a rare positive class: it is the positive one, the threshold is tuned for
    a target recall, and recall has a floor beside ROC AUC (which alone passes a model that never
    finds the rare class)."""
    if rare is None:
        return
    label, share = rare
    spec["positive_class"] = _label(label)
    spec["evaluation"]["floors"] = {"roc_auc": 0.7, "recall": 0.5}
    spec["evaluation"]["threshold"] = {"optimize": "precision_at_recall", "min_recall": 0.6}
    if hints is not None:
        hints.append(
            f"{spec['target']}={label!r} is {share:.1%} of the sample: it is the positive class, the "
            "decision threshold is tuned for recall 0.6 on the training folds (evaluation.threshold) and "
            "recall has a floor of 0.5 beside roc_auc. Also consider model.params class_weight: balanced "
            "and a floor on average_precision; see docs/imbalanced.md"
        )


def _label(value: str) -> Any:
    """A class label as YAML should hold it: integers as numbers, anything else as text."""
    try:
        return int(value)
    except ValueError:
        return value


_DEFAULTS: dict[str, dict[str, Any]] = {
    "binary": {"family": "random_forest", "primary": "roc_auc", "floors": {"roc_auc": 0.7}},
    "multiclass": {"family": "random_forest", "primary": "f1_macro", "floors": {"f1_macro": 0.5}},
    "regression": {"family": "hist_gradient_boosting", "primary": "rmse", "floors": {"r2": 0.1}},
}


def _one_line(text: str) -> str:
    """``text`` safe inside a ``#`` comment: a line break (``\\n``, ``\\r``, U+0085, U+2028...) in a
    file name would end the comment and start YAML keys, so every unprintable character is escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _checked_path(name: str, csv_path: str | Path) -> Path:
    """The CSV's path, after checking the pipeline name and that the file exists."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"pipeline name {name!r}: use 2-63 lowercase letters, digits and _, starting with a letter"
        )
    path = Path(csv_path)
    if not path.is_file():
        raise ScaffoldError(f"{path} is not a file")
    return path


def _expectations(
    target: Column, labels: list[Any], kind: str, per_day: list[int], ids: list[str]
) -> list[dict[str, Any]]:
    """The row count (per day as counted), the target's classes and unique id columns. No per-column
    not-null: the data contract learned at training already refuses a column gone empty and a null
    target, and warns on a null share that moved (docs/bad-data.md)."""
    expectations: list[dict[str, Any]] = [
        {"expect_table_row_count_to_be_between": {"min_value": _row_count(per_day, len(target.values))}}
    ]
    if kind != "regression":
        expectations.append(
            {
                "expect_column_values_to_be_in_set": {
                    "column": target.name,
                    "value_set": [_label(v) for v in labels],
                }
            }
        )
    for name_ in ids:
        expectations.append({"expect_column_values_to_be_unique": {"column": name_}})
    return expectations


def _model_and_gate(spec: dict[str, Any], kind: str) -> None:
    """The problem type's default family, primary metric and floors, and a random holdout."""
    defaults = _DEFAULTS[kind]
    spec["model"] = {"family": defaults["family"], "params": {}, "seed": 42}
    spec["evaluation"] = {
        "primary_metric": defaults["primary"],
        "floors": defaults["floors"],
        "min_improvement": 0.0,
        "holdout": {"strategy": "random", "fraction": 0.2, "seed": 7},
    }


def _header(name: str, path: Path, kind: str, spec: dict[str, Any], rare: tuple[str, float] | None) -> str:
    """The comment block above the YAML: what was guessed (to review) and how to validate it."""
    return (
        f"# {name}: scaffolded by `mlops-airflow new` from the header and first {SAMPLE_ROWS} rows of "
        f"{_one_line(path.name)}.\n"
        f"# Guessed: problem_type {kind}"
        + (
            f" (positive_class {_one_line(repr(spec.get('positive_class')))}: check it)"
            if kind == "binary"
            else ""
        )
        + (
            f", an imbalanced target ({rare[1]:.1%} {_one_line(repr(rare[0]))}: threshold and recall floor)"
            if rare
            else ""
        )
        + ", id/time/categorical columns, left-out columns (features.exclude: row indexes, numeric"
        " copies of the date, text with a value for nearly every row), start_date (the data's first day), floors and expectations (rows per"
        " day as counted). Review every line, then run\n"
        f"#   mlops-airflow validate dags/pipelines/{name}.yaml\n"
        "# yaml-language-server: $schema=../../include/schema/pipeline.schema.json\n"
    )


def scaffold(
    name: str,
    csv_path: str | Path,
    target: str,
    *,
    problem_type: str | None = None,
    source_uri: str | None = None,
    hints: list[str] | None = None,
) -> str:
    """YAML text of a new pipeline ``name`` reading ``csv_path`` and predicting ``target``.

    :param hints: when given, advice for the person is appended to it (the CLI prints it).
    """
    path = _checked_path(name, csv_path)
    columns = _read(path)
    by_name = {c.name: c for c in columns}
    if target not in by_name:
        raise ScaffoldError(f"target {target!r} is not a column of {path}; columns: {', '.join(by_name)}")
    guessed, labels = _problem_type(by_name[target])
    kind = problem_type or guessed
    if kind not in _DEFAULTS:
        raise ScaffoldError(f"problem type {kind!r}: choose binary, multiclass or regression")
    ids, dates, left_out, categorical = _roles([c for c in columns if c.name != target])
    _identifier_hint([c for c in columns if c.name in left_out and not c.numeric], hints)
    first_day, per_day = _days(path, dates[0]) if dates else (None, [])
    spec: dict[str, Any] = {
        "name": name,
        "description": f"TODO: what {name} predicts, for whom, and what it must not be used for.",
        "schedule": "@weekly",
        "start_date": first_day or date.today(),
        "source": {
            "uri": source_uri or f"${{MLOPS_LANDING}}/{name}/{path.name}",
            "format": "csv",
            "partition": (
                {"mode": "column", "column": dates[0], "lookback_days": 90} if dates else {"mode": "snapshot"}
            ),
        },
        "target": target,
        "problem_type": kind,
    }
    if kind == "binary":
        spec["positive_class"] = _label(labels[-1])
    spec["features"] = {
        "include": None,
        "exclude": left_out,
        "id_columns": ids,
        "time_columns": dates,
        "categorical": categorical,
    }
    spec["expectations"] = _expectations(by_name[target], labels, kind, per_day, ids)
    _model_and_gate(spec, kind)
    rare = _rare(by_name[target], labels, kind)
    _imbalanced(spec, rare, hints)
    spec["monitoring"] = {"schedule": "@daily", "reference": "champion_training"}
    parse_spec(spec, f"scaffold of {name}")  # the scaffold must itself be a valid pipeline
    return _header(name, path, kind, spec, rare) + yaml.safe_dump(
        spec, sort_keys=False, default_flow_style=None, width=100
    )
