"""``mlops-airflow new``: a first pipeline YAML from a CSV's header and a sample of its rows.

Reads at most :data:`SAMPLE_ROWS` rows with the standard library (no pandas), guesses what a person
would write first (the problem type from the target's values, id and date columns from names and
values, a not-null expectation for columns with no empty value in the sample) and returns YAML
text that :func:`mlops_core.spec.parse_spec` accepts. Everything guessed is marked for review.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from mlops_core.spec import parse_spec

SAMPLE_ROWS = 5000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|^key$)", re.I)
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


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
            columns = [Column(name.strip()) for name in header]
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
    if not _NAME.match(name):
        raise ScaffoldError(
            f"pipeline name {name!r}: use 2-63 lowercase letters, digits and _, starting with a letter"
        )
    path = Path(csv_path)
    if not path.is_file():
        raise ScaffoldError(f"{path} is not a file")
    columns = _read(path)
    by_name = {c.name: c for c in columns}
    if target not in by_name:
        raise ScaffoldError(f"target {target!r} is not a column of {path}; columns: {', '.join(by_name)}")
    guessed, labels = _problem_type(by_name[target])
    kind = problem_type or guessed
    if kind not in _DEFAULTS:
        raise ScaffoldError(f"problem type {kind!r}: choose binary, multiclass or regression")
    others = [c for c in columns if c.name != target]
    ids = [c.name for c in others if _ID_NAME.search(c.name) and c.unique]
    dates = [c.name for c in others if c.is_date]
    categorical = [c.name for c in others if c.name not in ids + dates and not c.numeric and c.present]
    defaults = _DEFAULTS[kind]
    expectations: list[dict[str, Any]] = [{"expect_table_row_count_to_be_between": {"min_value": 100}}]
    if kind != "regression":
        expectations.append(
            {
                "expect_column_values_to_be_in_set": {
                    "column": target,
                    "value_set": [_label(v) for v in labels],
                }
            }
        )
    for col in columns:
        if col.values and len(col.present) == len(col.values):
            expectations.append({"expect_column_values_to_not_be_null": {"column": col.name}})
    for name_ in ids:
        expectations.append({"expect_column_values_to_be_unique": {"column": name_}})
    spec: dict[str, Any] = {
        "name": name,
        "description": f"TODO: what {name} predicts, for whom, and what it must not be used for.",
        "schedule": "@weekly",
        "start_date": date.today(),
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
    spec["features"] = {"include": None, "id_columns": ids, "time_columns": dates, "categorical": categorical}
    spec["expectations"] = expectations
    spec["model"] = {"family": defaults["family"], "params": {}, "seed": 42}
    spec["evaluation"] = {
        "primary_metric": defaults["primary"],
        "floors": defaults["floors"],
        "min_improvement": 0.0,
        "holdout": {"strategy": "random", "fraction": 0.2, "seed": 7},
    }
    rare = _rare(by_name[target], labels, kind)
    _imbalanced(spec, rare, hints)
    spec["monitoring"] = {"schedule": "@daily", "reference": "champion_training"}
    parse_spec(spec, f"scaffold of {name}")  # the scaffold must itself be a valid pipeline
    header = (
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
        + ", id/time/categorical columns, floors and expectations. Review every line, then run\n"
        f"#   mlops-airflow validate dags/pipelines/{name}.yaml\n"
        "# yaml-language-server: $schema=../../include/schema/pipeline.schema.json\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
