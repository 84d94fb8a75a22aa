"""The column sections: ``features`` (which columns feed the model), ``feature_store`` (point-in-time
joins from an offline store), ``expectations`` (Great Expectations checks) and ``contract`` (the
data contract learned at training)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.spec.catalog import EXPECTATIONS, check_expectation_args
from mlops_core.spec.common import ColumnName, SpecModel
from mlops_core.spec.source import check_source_uri


class FeatureJoin(SpecModel):
    """One point-in-time join from an offline feature store (:mod:`mlops_core.data.features`).

    ``store: sagemaker``: the offline store of SageMaker Feature Store group ``feature_group`` (the
    aws profile's connection). ``store: vertex``: Vertex AI Feature Store group ``feature_group``
    (its BigQuery source; the group's entity id and timestamp columns are the store's keys and
    time, ``features`` are feature ids of the group; the gcp profile's connection). ``store:
    table``: an offline table of your own (``table``: Parquet or CSV under the landing zone or a
    source root). Each source row gets ``features`` as of its
    ``event_time``: the latest record of its ``entity_columns`` at or before it (no later value can
    leak into training), at most ``max_age_days`` old.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    store: Literal["sagemaker", "vertex", "table"]
    feature_group: str | None = Field(None, pattern=r"^[a-zA-Z0-9]([_-]*[a-zA-Z0-9]){0,63}$")
    table: str | None = None
    entity_columns: list[ColumnName] = Field(min_length=1, max_length=5)
    store_entity_columns: list[ColumnName] | None = Field(None, min_length=1, max_length=5)
    event_time: ColumnName
    store_event_time: ColumnName | None = None  # default: the same name as event_time
    features: list[ColumnName] = Field(min_length=1, max_length=200)
    max_age_days: int | None = Field(None, ge=1, le=3650)

    @field_validator("table")
    @classmethod
    def _table_policy(cls, value: str | None) -> str | None:
        return None if value is None else check_source_uri(value)

    @model_validator(mode="after")
    def _store(self) -> FeatureJoin:
        if self.store in ("sagemaker", "vertex") and (self.feature_group is None or self.table is not None):
            raise ValueError(f"store {self.store!r} needs feature_group (and no table)")
        if self.store == "table" and (self.table is None or self.feature_group is not None):
            raise ValueError("store 'table' needs table (and no feature_group)")
        if self.store_entity_columns is not None and len(self.store_entity_columns) != len(
            self.entity_columns
        ):
            raise ValueError("store_entity_columns must name one store column per entity_columns entry")
        if len(set(self.features)) != len(self.features):
            raise ValueError("features lists a column twice")
        overlap = set(self.features) & {*self.entity_columns, self.event_time}
        if overlap:
            raise ValueError(f"features {sorted(overlap)} are also the join's keys or time")
        return self

    @property
    def store_keys(self) -> list[str]:
        return list(self.store_entity_columns or self.entity_columns)

    @property
    def store_time(self) -> str:
        return self.store_event_time or self.event_time


class FeatureStoreSpec(SpecModel):
    """Offline feature-store joins ``ingest`` applies, in order, before it writes the day's partition."""

    joins: list[FeatureJoin] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _distinct(self) -> FeatureStoreSpec:
        names = [j.name for j in self.joins]
        if len(set(names)) != len(names):
            raise ValueError("feature_store.joins: each join needs its own name")
        features = [f for j in self.joins for f in j.features]
        twice = sorted({f for f in features if features.count(f) > 1})
        if twice:
            raise ValueError(f"feature_store.joins: {twice} come from more than one join")
        return self


class FeaturesSpec(SpecModel):
    """Which columns feed the model. ``include: null`` infers every column except target, ids and times."""

    include: list[str] | None = None
    exclude: list[str] = []
    id_columns: list[str] = []
    time_columns: list[str] = []
    categorical: list[str] = []


class ExpectationSpec(SpecModel):
    """One Great Expectations 1.x expectation: its snake_case type and its arguments."""

    type: str
    kwargs: dict[str, Any] = {}  # each argument checked by mlops_core.spec.catalog.check_expectation_args

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        # YAML short form: ``- expect_column_values_to_not_be_null: {column: x}``
        if isinstance(data, dict) and len(data) == 1 and "type" not in data:
            ((name, kwargs),) = data.items()
            return {"type": name, "kwargs": kwargs or {}}
        return data

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in EXPECTATIONS:
            close = sorted(e for e in EXPECTATIONS if value.split("_to_")[0] in e)[:5]
            hint = f" (close: {', '.join(close)})" if close else ""
            raise ValueError(f"unknown expectation {value!r}{hint}; see mlops_core.spec.catalog.EXPECTATIONS")
        return value

    @model_validator(mode="after")
    def _arguments(self) -> ExpectationSpec:
        problems = check_expectation_args(self.type, dict(self.kwargs))
        if problems:
            raise ValueError(f"{self.type}: " + "; ".join(problems))
        return self


class ContractSpec(SpecModel):
    """The data contract learned from the champion's training data and checked on every new partition.

    Recorded with each model at training (``contract.json``): the column set, dtypes, null share,
    category sets and numeric ranges. ``validate`` checks a new partition against the champion's
    contract before training, scoring and monitoring. Structural rules (a missing or emptied column, a
    changed type, the target without labels, an extra column with ``extra_columns: refuse``) fail
    with the column, the expected and the observed value; distribution rules (the tolerances
    below: unseen categories, ranges, null shares) only warn, everywhere: a retrain learns its own
    contract, and the gate decides. Works with no user-written expectations.
    """

    enabled: bool = True
    null_share_margin: float = Field(0.05, ge=0.0, le=1.0)  # allowed rise of a column's null share
    new_category_share: float = Field(0.01, ge=0.0, le=1.0)  # share of rows with unseen categories
    range_margin: float = Field(0.25, ge=0.0, le=100.0)  # widening of [min, max], in units of its width
    out_of_range_share: float = Field(0.01, ge=0.0, le=1.0)  # share of rows allowed outside it
    extra_columns: Literal["allow", "refuse"] = "allow"
