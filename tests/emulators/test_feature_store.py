"""``feature_store`` with ``store: sagemaker`` on moto: the feature group's offline store (the
Parquet files SageMaker writes under its ``ResolvedOutputS3Uri``) joined point-in-time by
``IngestOperator`` through the ``aws_default`` connection.

moto keeps feature groups (``CreateFeatureGroup`` / ``DescribeFeatureGroup``) but never moves
``PutRecord`` data to the offline store, so the test writes the offline store's files itself, in
SageMaker's layout (``year=/month=/day=/hour=`` folders, the ``write_time``,
``api_invocation_time`` and ``is_deleted`` columns). Three records per biopsy: the true
measurement the day before its row, a correction written later for the same event time (it wins),
and a record dated after the row holding nonsense, which must never reach the row.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import pandas as pd
import pytest

from tests.contract.test_managed_ingestion import DS, context
from tests.helpers import example_spec

pytestmark = pytest.mark.emulator

MOVED = ["worst_area", "mean_area"]


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, local_dir: Any) -> dict[str, Any]:
    import boto3

    root = f"s3://mlops-lake/{uuid.uuid4().hex[:8]}"
    for key, value in {
        "MLOPS_AWS_LAKE": f"{root}/lake",
        "MLOPS_AWS_LANDING": f"{root}/landing",
        "MLOPS_AWS_MONITORING_EXPORT": "none",
        "MLOPS_AWS_TRAINING_BACKEND": "in_worker",
        "MLOPS_AWS_DEPLOY_TARGET": "local",
    }.items():
        monkeypatch.setenv(key, value)

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return {"root": root, "client": client}


def _offline_store(aws: dict[str, Any], group: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Create the group on moto and write its offline store as SageMaker would; the true values."""
    sm, s3 = aws["client"]("sagemaker"), aws["client"]("s3")
    sm.create_feature_group(
        FeatureGroupName=group,
        RecordIdentifierFeatureName="record_id",
        EventTimeFeatureName="EventTime",
        FeatureDefinitions=[
            {"FeatureName": "record_id", "FeatureType": "Integral"},
            {"FeatureName": "EventTime", "FeatureType": "String"},
            *({"FeatureName": f, "FeatureType": "Fractional"} for f in MOVED),
        ],
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"{aws['root']}/feature-store"}},
        RoleArn="arn:aws:iam::123456789012:role/fs",
    )
    uri = sm.describe_feature_group(FeatureGroupName=group)["OfflineStoreConfig"]["S3StorageConfig"][
        "ResolvedOutputS3Uri"
    ]
    day = pd.to_datetime(frame["event_date"])
    true = frame[["record_id", *MOVED]].assign(
        EventTime=(day - pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    first = true.assign(**{f: -1.0 for f in MOVED}, write_time=day - pd.Timedelta(days=1))  # later corrected
    corrected = true.assign(write_time=day - pd.Timedelta(hours=12))
    future = true.assign(
        EventTime=(day + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **{f: 1e9 for f in MOVED},
        write_time=day + pd.Timedelta(days=1),
    )
    records = pd.concat([first, corrected, future], ignore_index=True)
    records = records.assign(api_invocation_time=records["write_time"], is_deleted=False)
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    for (year, month), part in records.groupby(
        [records["write_time"].dt.year, records["write_time"].dt.month]
    ):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        s3.put_object(
            Bucket=bucket,
            Key=f"{prefix}/year={year}/month={month:02d}/day=01/hour=00/{uuid.uuid4().hex}.parquet",
            Body=buffer.getvalue(),
        )
    return true


def test_ingest_joins_the_offline_store_as_of_each_rows_time(aws: dict[str, Any]) -> None:
    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_airflow.operators.data import IngestOperator
    from mlops_core.data import storage
    from mlops_dev import datasets

    group = f"biopsies-{uuid.uuid4().hex[:6]}"
    frame = datasets.load_example("breast_cancer")
    true = _offline_store(aws, group, frame)
    spec = example_spec(
        name="fs_join",
        cloud="aws",
        feature_store={
            "joins": [
                {
                    "name": "measurements",
                    "store": "sagemaker",
                    "feature_group": group,
                    "entity_columns": ["record_id"],
                    "event_time": "event_date",
                    "store_event_time": "EventTime",
                    "features": MOVED,
                    "max_age_days": 30,
                }
            ]
        },
    )
    with cloud_context(spec) as profile:
        datasets.materialize("breast_cancer", profile.landing, frame=frame.drop(columns=MOVED))
    ingest = IngestOperator(task_id="ingest", pipeline=spec, partition_date=DS)
    raw = ingest.execute(context(ingest))
    with cloud_context(spec):
        joined = storage.read_frame(raw["uri"])
        manifest = storage.read_manifest(raw["uri"])
    merged = joined[["record_id", *MOVED]].merge(
        true[["record_id", *MOVED]], on="record_id", suffixes=("", "_true")
    )
    assert len(merged) == raw["rows"] > 100
    for feature in MOVED:  # the correction, never the first write nor the future record
        assert (merged[feature] == merged[f"{feature}_true"]).all(), feature
    (lineage,) = manifest.extra["feature_joins"]
    assert lineage == {
        "name": "measurements",
        "store": "sagemaker",
        "source": group,
        "records": 3 * len(frame),
        "rows_with_values": raw["rows"],
    }
