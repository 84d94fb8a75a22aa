"""Vertex AI Feature Store: a feature group's BigQuery rows as the records of a point-in-time join
(:mod:`mlops_core.data.features`): only the day's entities, up to its latest event time, read by a
parameterised query."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mlops_core.data.features import FeatureStoreError, _times

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import FeatureJoin
    from mlops_core.spec.profiles import ClientFactory


# GoogleSQL identifiers the query names (from the API's answer, never pasted unchecked)
_BQ_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_BQ_TABLE = re.compile(
    r"^bq://([a-z][a-z0-9-]{0,62}[a-z0-9])\.([A-Za-z0-9_]{1,1024})\.([A-Za-z0-9_-]{1,1024})$"
)
MAX_VERTEX_RECORDS = 5_000_000  # what one ingest reads into memory at most
_MAX_KEY_FILTER = 100_000  # more distinct keys than this: filter by time only


def _vertex_store(
    join: FeatureJoin, rows: pd.DataFrame, clients: ClientFactory | None, storage_options: Any = None
) -> tuple[pd.DataFrame, FeatureJoin]:
    """A Vertex AI Feature Store feature group: its BigQuery rows for the day's entities, up to the
    day's latest event time; the join with the group's own key and timestamp columns."""
    from mlops_core.clouds.gcp import client as gcp
    from mlops_core.spec import profiles as clouds

    profile = clouds.active()
    if clients is None or profile is None or profile.name != "gcp":
        raise FeatureStoreError(
            f"feature join {join.name!r}: a Vertex AI feature group needs the gcp profile (cloud: gcp) and its clients"
        )
    vertex = gcp.VertexClient.for_profile(profile, clients)
    try:
        group = vertex.get_feature_group(str(join.feature_group))
        registered = vertex.list_features(str(join.feature_group))
    except gcp.GoogleApiError as err:
        if err.status == 404:
            raise FeatureStoreError(
                f"feature join {join.name!r}: feature group {join.feature_group!r} does not exist in "
                f"{profile.setting('project')}/{profile.setting('location')}; fix feature_group"
            ) from err
        raise
    table, keys, time_column = _vertex_source(join, group)
    columns = {str(f["name"]).rsplit("/", 1)[-1]: str(f.get("versionColumnName") or "") for f in registered}
    unknown = [f for f in join.features if f not in columns]
    if unknown:
        raise FeatureStoreError(
            f"feature join {join.name!r}: feature group {join.feature_group!r} has no feature(s) {unknown} "
            f"(it has {sorted(columns)[:20]})"
        )
    effective = join.model_copy(update={"store_entity_columns": keys, "store_event_time": time_column})
    sql, parameters = _vertex_query(effective, table, {f: columns[f] or f for f in join.features}, rows)
    try:
        fields, values = gcp.bigquery_query(profile, clients, sql, parameters, max_rows=MAX_VERTEX_RECORDS)
    except ValueError as err:
        raise FeatureStoreError(f"feature join {join.name!r}: {err}") from err
    return _bigquery_frame(fields, values), effective


def _vertex_source(join: FeatureJoin, group: dict[str, Any]) -> tuple[str, list[str], str]:
    """The group's table (as a quoted GoogleSQL path), entity id columns and timestamp column."""
    bq = group.get("bigQuery") or {}
    uri = str((bq.get("bigQuerySource") or {}).get("inputUri") or "")
    match = _BQ_TABLE.match(uri)
    if not match:
        raise FeatureStoreError(
            f"feature join {join.name!r}: feature group {join.feature_group!r} has no BigQuery table source "
            f"this join can read (inputUri {uri!r})"
        )
    if bq.get("staticDataSource"):
        raise FeatureStoreError(
            f"feature join {join.name!r}: feature group {join.feature_group!r} is static (no feature timestamps), "
            "so no point-in-time join can be made from it"
        )
    keys = [str(k) for k in bq.get("entityIdColumns") or ["entity_id"]]
    time_column = str((bq.get("timeSeries") or {}).get("timestampColumn") or "feature_timestamp")
    if join.store_entity_columns is not None and list(join.store_entity_columns) != keys:
        raise FeatureStoreError(
            f"feature join {join.name!r}: store_entity_columns {join.store_entity_columns} are not the feature "
            f"group's entity id columns {keys}"
        )
    if len(keys) != len(join.entity_columns):
        raise FeatureStoreError(
            f"feature join {join.name!r}: the feature group is keyed by {keys}; entity_columns must name "
            f"{len(keys)} column(s)"
        )
    bad = [c for c in [*keys, time_column] if not _BQ_COLUMN.match(c)]
    if bad:
        raise FeatureStoreError(
            f"feature join {join.name!r}: column name(s) {bad} are not GoogleSQL identifiers"
        )
    return "`" + ".".join(match.groups()) + "`", keys, time_column


def _vertex_query(
    join: FeatureJoin, table: str, feature_columns: dict[str, str], rows: pd.DataFrame
) -> tuple[str, list[dict[str, Any]]]:
    """The parameterised query: the group's rows of the day's entities, at or before the day's
    latest event time (and not older than ``max_age_days`` before its earliest)."""
    import pandas as pd

    bad = [c for c in feature_columns.values() if not _BQ_COLUMN.match(c)]
    if bad:
        raise FeatureStoreError(
            f"feature join {join.name!r}: column name(s) {bad} are not GoogleSQL identifiers"
        )
    times = _times(rows[join.event_time], f"source column {join.event_time!r}").dropna()
    if times.empty:
        raise FeatureStoreError(f"feature join {join.name!r}: no source row has an event time")
    select = [*join.store_keys, join.store_time] + [
        f"{col} AS {name}" for name, col in feature_columns.items()
    ]
    where = [f"{join.store_time} <= @until"]
    parameters = [_bq_param("until", "TIMESTAMP", times.max())]
    if join.max_age_days is not None:
        where.append(f"{join.store_time} >= @since")
        parameters.append(_bq_param("since", "TIMESTAMP", times.min() - pd.Timedelta(days=join.max_age_days)))
    for i, (column, store_key) in enumerate(zip(join.entity_columns, join.store_keys, strict=True)):
        keys = sorted({_key_text(v) for v in rows[column].dropna().unique()})
        if len(keys) <= _MAX_KEY_FILTER:
            where.append(f"CAST({store_key} AS STRING) IN UNNEST(@keys_{i})")
            parameters.append(
                {
                    "name": f"keys_{i}",
                    "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
                    "parameterValue": {"arrayValues": [{"value": k} for k in keys]},
                }
            )
    sql = f"SELECT {', '.join(select)} FROM {table} WHERE {' AND '.join(where)}"
    return sql, parameters


def _key_text(value: Any) -> str:
    """A key as ``CAST(key AS STRING)`` spells it: ``7``, not ``7.0`` (a key column with nulls is float)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bq_param(name: str, kind: str, value: Any) -> dict[str, Any]:
    text = value.strftime("%Y-%m-%d %H:%M:%S.%f+00:00") if kind == "TIMESTAMP" else str(value)
    return {"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": text}}


_BQ_INT = {"INTEGER", "INT64"}
_BQ_FLOAT = {"FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"}


def _bigquery_frame(fields: list[dict[str, Any]], values: list[list[Any]]) -> pd.DataFrame:
    """The query's rows as a frame: INT64 as integers, TIMESTAMP (int64 microseconds) as UTC times."""
    import pandas as pd

    names = [str(f["name"]) for f in fields]
    frame = pd.DataFrame(values, columns=names)
    for field in fields:
        name, kind = str(field["name"]), str(field.get("type", "STRING")).upper()
        if field.get("mode") == "REPEATED" or kind in ("RECORD", "STRUCT"):
            raise FeatureStoreError(
                f"BigQuery column {name!r} is {kind} {field.get('mode', '')}: a feature must be a scalar"
            )
        column = frame[name]
        if kind in _BQ_INT:
            frame[name] = pd.array([None if v is None else int(v) for v in column], dtype="Int64")
        elif kind in _BQ_FLOAT:
            frame[name] = pd.to_numeric(column, errors="coerce")
        elif kind in ("BOOLEAN", "BOOL"):
            frame[name] = [None if v is None else str(v).lower() == "true" for v in column]
        elif kind == "TIMESTAMP":
            frame[name] = pd.to_datetime(pd.to_numeric(column), unit="us", utc=True)
    return frame


vertex_store = _vertex_store
