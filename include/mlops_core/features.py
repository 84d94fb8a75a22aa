"""Point-in-time joins from an offline feature store: each row gets the features as they were at
its own event time, never later ones.

Three stores: a SageMaker Feature Store group's offline store (the Parquet files SageMaker writes
under the group's ``ResolvedOutputS3Uri``, read with the profile's connection; its
``write_time``, ``api_invocation_time`` and ``is_deleted`` columns are honoured); a Vertex AI
Feature Store feature group (its BigQuery source, found with ``featureGroups.get``, its entity id
columns and feature timestamp column, each feature's ``versionColumnName``; only the rows of the
day's entities up to its latest event time are read, by a parameterised query); and an offline
table of your own (Parquet or CSV under the landing zone or a source root, one row per entity and
event time). ``ingest`` applies the joins before it writes the day's partition, so training,
scoring and monitoring all read the same joined columns.

For a row with key ``k`` and time ``t`` a join takes, among the store's records of ``k`` with
event time ``<= t`` (and, with ``max_age_days``, ``>= t - max_age``), the latest; of several with
that event time, the last written. A latest record that is a deletion means no value. Rows with no
match, or no time, get nulls (the validation step and the contract judge them like any null).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.clouds import ClientFactory
    from mlops_core.spec import FeatureJoin, PipelineSpec

log = logging.getLogger(__name__)

# the offline store's own columns (SageMaker Feature Store)
WRITE_TIME, INVOCATION_TIME, DELETED = "write_time", "api_invocation_time", "is_deleted"


class FeatureStoreError(ValueError):
    """A join that cannot be made (a missing column, an unknown feature group); retrying will not help."""


def _times(values: pd.Series, what: str) -> pd.Series:
    """UTC timestamps from datetimes, ISO strings or epoch seconds (SageMaker's two event-time types)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return pd.to_datetime(values, unit="s", utc=True, errors="coerce")
    out = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = values.notna() & out.isna()
    if bad.any():
        raise FeatureStoreError(
            f"{what}: {int(bad.sum())} value(s) are not times, e.g. {values[bad].iloc[0]!r}"
        )
    return out


def point_in_time(rows: pd.DataFrame, store: pd.DataFrame, join: FeatureJoin) -> pd.DataFrame:
    """``rows`` with ``join.features`` as of each row's ``join.event_time`` (see the module doc)."""
    import pandas as pd

    keys, store_keys = join.entity_columns, join.store_keys
    missing = [c for c in [*keys, join.event_time] if c not in rows.columns]
    if missing:
        raise FeatureStoreError(f"feature join {join.name!r}: the source rows have no column(s) {missing}")
    needed = [*store_keys, join.store_time, *join.features]
    absent = [c for c in needed if c not in store.columns]
    if absent:
        raise FeatureStoreError(
            f"feature join {join.name!r}: the store has no column(s) {absent} (it has {sorted(store.columns)[:20]})"
        )
    clash = [f for f in join.features if f in rows.columns]
    if clash:
        raise FeatureStoreError(f"feature join {join.name!r}: the source rows already have {clash}")

    right = store[needed + [c for c in (WRITE_TIME, INVOCATION_TIME, DELETED) if c in store.columns]].copy()
    right = right.rename(columns=dict(zip(store_keys, keys, strict=True)))
    right["__t"] = _times(right[join.store_time], f"store column {join.store_time!r}")
    order = ["__t"] + [c for c in (WRITE_TIME, INVOCATION_TIME) if c in right.columns]
    for column in order[1:]:
        right[column] = _times(right[column], f"store column {column!r}")
    # one record per key and event time: the last written (a correction wins over the original)
    right = right.dropna(subset=["__t", *keys]).sort_values(order, kind="stable")
    right = right.drop_duplicates([*keys, "__t"], keep="last")

    left = rows.copy()
    left["__row"] = range(len(left))
    left["__t"] = _times(left[join.event_time], f"source column {join.event_time!r}")
    timed = left.dropna(subset=["__t"]).sort_values("__t", kind="stable")
    for key in keys:  # merge_asof needs equal key dtypes on both sides
        if timed[key].dtype != right[key].dtype:
            timed[key], right[key] = timed[key].astype(str), right[key].astype(str)
    matched = pd.merge_asof(
        timed,
        right[[*keys, "__t", *join.features, *([DELETED] if DELETED in right.columns else [])]],
        on="__t",
        by=keys,
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(days=join.max_age_days) if join.max_age_days else None,
    )
    if DELETED in matched.columns:  # the latest record is a deletion: the entity had no value then
        gone = matched[DELETED].astype("boolean").fillna(False).astype(bool)
        matched.loc[gone, join.features] = None
    joined = matched.set_index("__row")[join.features].reindex(range(len(left)))
    out = rows.copy()
    for feature in join.features:
        out[feature] = joined[feature].to_numpy()
    return out


def _sagemaker_store(join: FeatureJoin, clients: ClientFactory | None, storage_options: Any) -> pd.DataFrame:
    """A feature group's offline store: DescribeFeatureGroup names its S3 folder; every Parquet file
    under it (SageMaker partitions it by event time: ``year=/month=/day=/hour=``)."""
    from mlops_core import storage

    if clients is None:
        raise FeatureStoreError(
            f"feature join {join.name!r}: a SageMaker feature group needs the aws profile's clients"
        )
    try:
        group = clients("sagemaker").describe_feature_group(FeatureGroupName=join.feature_group)
    except Exception as err:  # botocore's ClientError: a missing group is named, the rest re-raised (retried)
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("ResourceNotFound", "ResourceNotFoundException"):
            raise FeatureStoreError(
                f"feature join {join.name!r}: feature group {join.feature_group!r} does not exist; fix feature_group"
            ) from err
        raise
    config = (group.get("OfflineStoreConfig") or {}).get("S3StorageConfig") or {}
    uri = config.get("ResolvedOutputS3Uri") or config.get("S3Uri")
    if not uri:
        raise FeatureStoreError(
            f"feature join {join.name!r}: feature group {join.feature_group!r} has no offline store; "
            "enable it (OfflineStoreConfig) or join from an offline table"
        )
    fs, base = storage.filesystem(uri, storage_options)
    files = _parquet_files(fs, base)
    if not files:
        raise FeatureStoreError(
            f"feature join {join.name!r}: the offline store {uri} holds no Parquet file yet"
        )
    return _read_parquet(fs, files, [*join.store_keys, join.store_time, *join.features])


# GoogleSQL identifiers the query names (from the API's answer, never pasted unchecked)
_BQ_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_BQ_TABLE = re.compile(
    r"^bq://([a-z][a-z0-9-]{0,62}[a-z0-9])\.([A-Za-z0-9_]{1,1024})\.([A-Za-z0-9_-]{1,1024})$"
)
MAX_VERTEX_RECORDS = 5_000_000  # what one ingest reads into memory at most
_MAX_KEY_FILTER = 100_000  # more distinct keys than this: filter by time only


def _vertex_store(
    join: FeatureJoin, clients: ClientFactory | None, rows: pd.DataFrame
) -> tuple[pd.DataFrame, FeatureJoin]:
    """A Vertex AI Feature Store feature group: its BigQuery rows for the day's entities, up to the
    day's latest event time; the join with the group's own key and timestamp columns."""
    from mlops_core import clouds, gcp

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


def _parquet_files(fs: Any, base: str) -> list[str]:
    if fs.isdir(base):
        return sorted(p for p in fs.find(base) if p.endswith(".parquet"))
    return [base] if fs.exists(base) else []


def _read_parquet(fs: Any, files: list[str], columns: list[str]) -> pd.DataFrame:
    """The columns wanted (and the offline store's own, where present) of every file, as one frame."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for path in files:
        with fs.open(path, "rb") as handle:
            table = pq.read_table(handle)
        keep = [c for c in [*columns, WRITE_TIME, INVOCATION_TIME, DELETED] if c in table.column_names]
        frames.append(table.select(keep).to_pandas())
    return pd.concat(frames, ignore_index=True)


def _table_store(join: FeatureJoin, storage_options: Any) -> pd.DataFrame:
    """An offline table: one CSV file, one Parquet file, or a folder of Parquet files."""
    from mlops_core import storage

    assert join.table is not None
    columns = [*join.store_keys, join.store_time, *join.features]
    # expands it (once); a local table reached through a symbolic link is refused like a source
    fs, base = storage.no_link(*storage.filesystem(join.table, storage_options))
    if base.endswith(".csv"):
        import pandas as pd

        if not fs.exists(base):
            raise FeatureStoreError(
                f"feature join {join.name!r}: no offline table at {storage_redacted(join.table)}"
            )
        with fs.open(base, "rb") as handle:
            return pd.read_csv(handle, usecols=lambda c: c in {*columns, WRITE_TIME, DELETED})
    files = _parquet_files(fs, base)
    if not files:
        raise FeatureStoreError(
            f"feature join {join.name!r}: no offline table at {storage_redacted(join.table)}"
        )
    return _read_parquet(fs, files, columns)


def apply(
    spec: PipelineSpec,
    rows: pd.DataFrame,
    *,
    clients: ClientFactory | None = None,
    storage_options: Any = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every join of ``spec.feature_store``, in order; the frame and the lineage for the manifest
    (per join: the store, its location, the records read and the rows that found a value)."""
    store_spec = spec.feature_store
    if store_spec is None or not len(rows):
        return rows, {}
    lineage = []
    for join in store_spec.joins:
        if join.store == "sagemaker":
            store, effective = _sagemaker_store(join, clients, storage_options), join
        elif join.store == "vertex":
            store, effective = _vertex_store(join, clients, rows)
        else:
            store, effective = _table_store(join, storage_options), join
        rows = point_in_time(rows, store, effective)
        found = int(rows[join.features].notna().any(axis=1).sum())
        lineage.append(
            {
                "name": join.name,
                "store": join.store,
                "source": join.feature_group or storage_redacted(join.table),
                "records": len(store),
                "rows_with_values": found,
            }
        )
        log.info(
            "feature join %s: %d of %d rows found values in %d records",
            join.name,
            found,
            len(rows),
            len(store),
        )
    return rows, {"feature_joins": lineage}


def storage_redacted(uri: str | None) -> str:
    from mlops_core import settings, storage

    return settings.redact(storage.expand(uri or ""))
