"""SageMaker Feature Store: a feature group's offline store as the records of a point-in-time join
(:mod:`mlops_core.data.features`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_core.data.features import FeatureStoreError, _parquet_files, _read_parquet

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import FeatureJoin
    from mlops_core.spec.profiles import ClientFactory


def offline_store(
    join: FeatureJoin, rows: pd.DataFrame, clients: ClientFactory | None, storage_options: Any
) -> tuple[pd.DataFrame, FeatureJoin]:
    """A feature group's offline store: DescribeFeatureGroup names its S3 folder; every Parquet file
    under it (SageMaker partitions it by event time: ``year=/month=/day=/hour=``)."""
    from mlops_core.data import filesystems

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
    fs, base = filesystems.filesystem(uri, storage_options)
    files = _parquet_files(fs, base)
    if not files:
        raise FeatureStoreError(
            f"feature join {join.name!r}: the offline store {uri} holds no Parquet file yet"
        )
    return _read_parquet(fs, files, [*join.store_keys, join.store_time, *join.features]), join
