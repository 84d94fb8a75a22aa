"""Point-in-time feature joins (``feature_store.joins``): a row gets the features as of its own
event time; nothing later, nothing deleted, nothing older than ``max_age_days``."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlops_core import feature_stores
from mlops_core.data import features
from mlops_core.spec import FeatureJoin, SpecError
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


def join(**changes: Any) -> FeatureJoin:
    base = {
        "name": "customer",
        "store": "table",
        "table": "${MLOPS_LANDING}/features/customer.parquet",
        "entity_columns": ["customer_id"],
        "event_time": "ts",
        "features": ["spend", "visits"],
    }
    return FeatureJoin.model_validate({**base, **changes})


STORE = pd.DataFrame(
    {
        "customer_id": [1, 1, 1, 2, 2],
        "ts": ["2026-01-01", "2026-01-10", "2026-01-20", "2026-01-05", "2026-01-05"],
        "spend": [10.0, 20.0, 30.0, 5.0, 6.0],
        "visits": [1, 2, 3, 7, 8],
        "write_time": ["2026-01-01", "2026-01-10", "2026-01-20", "2026-01-05T01:00", "2026-01-05T02:00"],
    }
)


def rows(*pairs: tuple[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [p[0] for p in pairs], "ts": [p[1] for p in pairs], "label": 1})


def test_each_row_gets_the_latest_record_at_or_before_its_time_never_a_later_one() -> None:
    got = features.point_in_time(
        rows((1, "2026-01-15"), (1, "2026-01-10"), (1, "2025-12-31"), (1, "2026-02-01"), (3, "2026-01-15")),
        STORE,
        join(),
    )
    # 01-15 -> the 01-10 record (not 01-20); exact time matches; before any record -> null;
    # an unknown entity -> null; the row order and the other columns are kept
    assert got["spend"].iloc[[0, 1, 3]].tolist() == [20.0, 20.0, 30.0]
    assert got["spend"].iloc[[2, 4]].isna().all()
    assert got["customer_id"].tolist() == [1, 1, 1, 1, 3] and (got["label"] == 1).all()


def test_of_two_records_at_one_event_time_the_last_written_wins() -> None:
    got = features.point_in_time(rows((2, "2026-01-06")), STORE, join())
    assert (got["spend"].item(), got["visits"].item()) == (6.0, 8)


def test_a_deletion_as_the_latest_record_means_no_value() -> None:
    store = pd.concat(
        [
            STORE.assign(is_deleted=False),
            pd.DataFrame(
                {
                    "customer_id": [1],
                    "ts": ["2026-01-12"],
                    "spend": [None],
                    "visits": [None],
                    "is_deleted": [True],
                }
            ),
        ],
        ignore_index=True,
    )
    got = features.point_in_time(rows((1, "2026-01-15"), (1, "2026-01-25")), store, join())
    assert pd.isna(got["spend"].iloc[0]) and got["spend"].iloc[1] == 30.0


def test_max_age_leaves_stale_features_out() -> None:
    got = features.point_in_time(rows((1, "2026-01-15"), (1, "2026-01-12")), STORE, join(max_age_days=3))
    assert pd.isna(got["spend"].iloc[0]) and got["spend"].iloc[1] == 20.0


def test_epoch_seconds_keys_of_another_dtype_and_store_column_names() -> None:
    store = STORE.rename(columns={"customer_id": "cid", "ts": "EventTime"}).assign(
        EventTime=lambda f: pd.to_datetime(f["EventTime"]).astype("int64") // 10**9,
        cid=lambda f: f["cid"].astype(str),
    )
    j = join(store_entity_columns=["cid"], store_event_time="EventTime")
    got = features.point_in_time(rows((1, "2026-01-15T12:00:00Z")), store, j)
    assert got["spend"].item() == 20.0


def test_a_row_without_a_time_gets_nulls_and_bad_times_are_named() -> None:
    got = features.point_in_time(rows((1, None), (1, "2026-01-15")), STORE, join())
    assert pd.isna(got["spend"].iloc[0]) and got["spend"].iloc[1] == 20.0
    with pytest.raises(features.FeatureStoreError, match="'ts': 1 value.*not times.*'yesterday'"):
        features.point_in_time(rows((1, "yesterday")), STORE, join())


@pytest.mark.parametrize(
    ("data", "store", "message"),
    [
        (rows((1, "2026-01-15")).drop(columns="ts"), STORE, r"source rows have no column\(s\) \['ts'\]"),
        (rows((1, "2026-01-15")), STORE.drop(columns="visits"), r"store has no column\(s\) \['visits'\]"),
        (rows((1, "2026-01-15")).assign(spend=1.0), STORE, r"already have \['spend'\]"),
    ],
)
def test_a_join_that_cannot_be_made_names_the_columns(
    data: pd.DataFrame, store: pd.DataFrame, message: str
) -> None:
    with pytest.raises(features.FeatureStoreError, match=message):
        features.point_in_time(data, store, join())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"store": "sagemaker"}, "store 'sagemaker' needs feature_group"),
        ({"table": None}, "store 'table' needs table"),
        ({"table": "https://example.com/f.parquet"}, "scheme 'https' is not allowed"),
        ({"table": "${MLOPS_LANDING}/../f.parquet"}, "may not contain '..'"),
        ({"features": ["spend", "spend"]}, "lists a column twice"),
        ({"features": ["customer_id"]}, "also the join's keys or time"),
        ({"store_entity_columns": ["a", "b"]}, "one store column per entity_columns entry"),
        ({"max_age_days": 0}, "max_age_days"),
    ],
)
def test_bad_joins_are_refused_at_parse(changes: dict[str, Any], message: str) -> None:
    data = join().model_dump() | changes
    with pytest.raises(SpecError, match=message):
        example_spec(feature_store={"joins": [data]})


def test_the_target_cannot_be_joined_and_features_come_from_one_join() -> None:
    with pytest.raises(SpecError, match="the target 'diagnosis' cannot be a joined feature"):
        example_spec(feature_store={"joins": [join(features=["diagnosis"]).model_dump()]})
    with pytest.raises(SpecError, match=r"\['spend'\] come from more than one join"):
        example_spec(
            feature_store={
                "joins": [join().model_dump(), join(name="again", features=["spend"]).model_dump()]
            }
        )


def test_an_unknown_feature_group_is_named_and_the_offline_store_is_found_by_describe() -> None:
    """The request SageMaker Feature Store gets (botocore's Stubber, checked against its model).
    moto answers an unknown group with a 500, so this path is proven by contract."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    spec = example_spec(
        feature_store={
            "joins": [
                join(
                    store="sagemaker", table=None, feature_group="no-such-group", event_time="event_date"
                ).model_dump()
            ]
        }
    )
    frame = pd.DataFrame({"customer_id": [1], "event_date": ["2026-01-01"]})
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_feature_group",
            "ResourceNotFound",
            "Resource Not Found: Amazon SageMaker can't find a FeatureGroup with name no-such-group",
            expected_params={"FeatureGroupName": "no-such-group"},
        )
        with pytest.raises(features.FeatureStoreError, match="feature group 'no-such-group' does not exist"):
            feature_stores.apply(spec, frame, clients=lambda service: client)
        stub.add_response(
            "describe_feature_group",
            {
                "FeatureGroupArn": "arn:aws:sagemaker:eu-west-1:123456789012:feature-group/g",
                "FeatureGroupName": "no-such-group",
                "RecordIdentifierFeatureName": "customer_id",
                "EventTimeFeatureName": "event_date",
                "FeatureDefinitions": [{"FeatureName": "customer_id", "FeatureType": "Integral"}],
                "CreationTime": "2026-01-01T00:00:00Z",
                "NextToken": "",
            },
            {"FeatureGroupName": "no-such-group"},
        )
        with pytest.raises(features.FeatureStoreError, match="has no offline store"):
            feature_stores.apply(spec, frame, clients=lambda service: client)


def test_an_offline_table_joins_through_ingest_and_the_model_trains_on_it(landing: str) -> None:
    from mlops_core import lifecycle
    from mlops_core.base import settings
    from mlops_core.data import filesystems, storage
    from mlops_core.model import training
    from mlops_dev import datasets

    frame = datasets.load_example("breast_cancer")
    moved = ["worst_area", "mean_area"]
    day = pd.to_datetime(frame["event_date"])
    table = pd.concat(
        [
            frame[["record_id", *moved]].assign(ts=day - pd.Timedelta(days=2)),
            frame[["record_id"]].assign(ts=day + pd.Timedelta(days=1), worst_area=1e9, mean_area=1e9),
        ]
    )
    fs, path = filesystems.filesystem(filesystems.join(landing, "features", "biopsies.parquet"))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as out:
        table.to_parquet(out, index=False)
    datasets.materialize("breast_cancer", landing, frame=frame.drop(columns=moved))
    spec = example_spec(
        feature_store={
            "joins": [
                {
                    "name": "biopsies",
                    "store": "table",
                    "table": "${MLOPS_LANDING}/features/biopsies.parquet",
                    "entity_columns": ["record_id"],
                    "event_time": "event_date",
                    "store_event_time": "ts",
                    "features": moved,
                }
            ]
        }
    )
    raw = lifecycle.ingest(spec, "2026-01-31", settings.lake_root())
    joined = storage.read_frame(raw["uri"]).merge(
        frame[["record_id", *moved]], on="record_id", suffixes=("", "_true")
    )
    assert (joined["worst_area"] == joined["worst_area_true"]).all()  # never the later 1e9
    assert storage.read_manifest(raw["uri"]).extra["feature_joins"][0]["rows_with_values"] == raw["rows"]
    trained = training.train(spec, raw["uri"], settings.lake_root(), "2026-01-31", {})
    assert set(moved) <= set(trained.numeric)
