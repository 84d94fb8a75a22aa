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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd

    from mlops_core.spec import FeatureJoin, PipelineSpec
    from mlops_core.spec.profiles import ClientFactory

    # a cloud feature store's reader: (join, the day's rows, clients, storage options) -> (the
    # store's records, the join as the store names its columns)
    StoreReader = Callable[
        [FeatureJoin, pd.DataFrame, ClientFactory | None, Any], tuple[pd.DataFrame, FeatureJoin]
    ]

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
    from mlops_core.data import filesystems, sources

    assert join.table is not None
    columns = [*join.store_keys, join.store_time, *join.features]
    # expands it (once); a local table reached through a symbolic link is refused like a source
    fs, base = sources.no_link(*filesystems.filesystem(join.table, storage_options))
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
    stores: Mapping[str, StoreReader] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every join of ``spec.feature_store``, in order; the frame and the lineage for the manifest
    (per join: the store, its location, the records read and the rows that found a value).

    :param stores: the cloud feature stores by name (``sagemaker``, ``vertex``); the clouds' own
        readers, given by :func:`mlops_core.feature_stores.apply`. ``table`` is always known.
    """
    stores = stores or {}
    store_spec = spec.feature_store
    if store_spec is None or not len(rows):
        return rows, {}
    lineage = []
    for join in store_spec.joins:
        if join.store in stores:
            store, effective = stores[join.store](join, rows, clients, storage_options)
        elif join.store == "table":
            store, effective = _table_store(join, storage_options), join
        else:
            raise FeatureStoreError(
                f"feature join {join.name!r}: the {join.store} feature store is not available here "
                f"(known: table, {', '.join(sorted(stores)) or 'no cloud store'})"
            )
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
    from mlops_core.base import settings

    return settings.redact(settings.expand(uri or ""))
