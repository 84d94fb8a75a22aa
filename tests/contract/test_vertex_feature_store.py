"""``feature_store.joins`` with ``store: vertex`` by contract: the Vertex AI Feature Store calls
(``featureGroups.get``, ``features.list``) and the BigQuery query of the group's source
(``jobs.query``, then ``jobs.getQueryResults`` for the next page), each request and each canned
answer held to Google's discovery documents (``aiplatform v1``, ``bigquery v2``), and the
point-in-time join of what came back.

Nothing here emulates BigQuery: the rows are the answer BigQuery would give to the query the code
sends; that the query selects the right rows is asserted on its text and parameters, and that a
later or too-old record never reaches a row is asserted on the join itself.
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import pytest

from mlops_core import feature_stores
from mlops_core.clouds.gcp import features as gcp_features
from mlops_core.data import features
from mlops_core.spec import profiles as clouds
from tests.contract.test_vertex import LOC, PARENT, Recorder
from tests.contract.test_vertex import PROFILE as GCP
from tests.helpers import example_spec

pytestmark = pytest.mark.contract

BQ = "https://bigquery.googleapis.com/bigquery/v2/projects/proj"
GROUP = "customer_features"
JOIN = {
    "name": "customers",
    "store": "vertex",
    "feature_group": GROUP,
    "entity_columns": ["customer_id"],
    "event_time": "event_time",
    "features": ["spend_30d", "visits"],
    "max_age_days": 30,
}


def group(**big_query: Any) -> dict[str, Any]:
    return {
        "name": f"{LOC}/featureGroups/{GROUP}",
        "bigQuery": {
            "bigQuerySource": {"inputUri": "bq://proj.features.customers"},
            "entityIdColumns": ["customer_id"],
            "timeSeries": {"timestampColumn": "ts"},
            **big_query,
        },
    }


FEATURES = {
    "features": [
        {"name": f"{LOC}/featureGroups/{GROUP}/features/spend_30d", "versionColumnName": "spend_30d_v2"},
        {"name": f"{LOC}/featureGroups/{GROUP}/features/visits"},
    ]
}
SCHEMA = {
    "fields": [
        {"name": "customer_id", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "ts", "type": "TIMESTAMP", "mode": "NULLABLE"},
        {"name": "spend_30d", "type": "FLOAT", "mode": "NULLABLE"},
        {"name": "visits", "type": "INTEGER", "mode": "NULLABLE"},
    ]
}


def us(day: str) -> str:
    """A TIMESTAMP as ``formatOptions.useInt64Timestamp`` returns it: int64 microseconds."""
    return str(int(pd.Timestamp(day, tz="UTC").value // 1000))


def row(customer: int, day: str, spend: float, visits: int | None) -> dict[str, Any]:
    return {
        "f": [
            {"v": str(customer)},
            {"v": us(day)},
            {"v": str(spend)},
            {"v": None if visits is None else str(visits)},
        ]
    }


REFERENCE = {"projectId": "proj", "jobId": "job_1", "location": "EU"}


def source_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 1],
            "event_time": pd.to_datetime(["2026-01-10", "2026-01-10", "2026-01-10", "2026-01-04"], utc=True),
            "amount": [5.0, 6.0, 7.0, 8.0],
        }
    )


def values(column: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in column]


def join_with(session: Recorder, **change: Any) -> pd.DataFrame:
    spec = example_spec(cloud="gcp", feature_store={"joins": [{**JOIN, **change}]})
    with clouds.using(GCP):
        joined, lineage = feature_stores.apply(spec, source_rows(), clients=lambda service: session)
    assert lineage["feature_joins"][0]["store"] == "vertex"
    return joined


def test_the_join_reads_the_groups_bigquery_rows_for_the_days_entities_and_keeps_point_in_time() -> None:
    page1 = {
        "kind": "bigquery#queryResponse",
        "jobComplete": True,
        "jobReference": REFERENCE,
        "schema": SCHEMA,
        "totalRows": "5",
        "pageToken": "page-2",
        "rows": [row(1, "2026-01-02", 10.0, 1), row(1, "2026-01-09", 20.0, 4)],
    }
    page2 = {
        "kind": "bigquery#getQueryResultsResponse",
        "jobComplete": True,
        "jobReference": REFERENCE,
        "schema": SCHEMA,
        "totalRows": "5",
        # 1 on the 12th: later than the row, never joined; 2 on 2025-11-01: older than 30 days
        "rows": [
            row(1, "2026-01-12", 99.0, 9),
            row(2, "2025-11-01", 50.0, None),
            row(2, "2026-01-10", 30.0, None),
        ],
    }
    session = Recorder(group(), FEATURES, page1, page2)
    joined = join_with(session)
    session.done()

    assert values(joined["spend_30d"]) == [20.0, 30.0, None, 10.0]
    assert values(joined["visits"]) == [4, None, None, 1]
    assert joined["amount"].tolist() == [5.0, 6.0, 7.0, 8.0]  # the source rows, in their order

    (m1, u1, _, _), (m2, u2, _, _), (m3, u3, body, _), (m4, u4, _, params) = session.calls
    assert (m1, u1) == ("GET", f"{PARENT}/featureGroups/{GROUP}")
    assert (m2, u2) == ("GET", f"{PARENT}/featureGroups/{GROUP}/features")
    assert (m3, u3) == ("POST", f"{BQ}/queries")
    # BigQuery's QueryRequest.requestId: at most 36 ASCII characters, a UUID recommended; the same
    # id on a retry makes BigQuery run the query once (test_a_retried_query_keeps_its_request_id)
    request_id = body.pop("requestId")
    assert len(request_id) <= 36 and str(uuid.UUID(request_id)) == request_id, request_id
    assert body == {
        "query": (
            "SELECT customer_id, ts, spend_30d_v2 AS spend_30d, visits AS visits "
            "FROM `proj.features.customers` "
            "WHERE ts <= @until AND ts >= @since AND CAST(customer_id AS STRING) IN UNNEST(@keys_0)"
        ),
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": [
            {
                "name": "until",
                "parameterType": {"type": "TIMESTAMP"},
                "parameterValue": {"value": "2026-01-10 00:00:00.000000+00:00"},
            },
            {
                "name": "since",
                "parameterType": {"type": "TIMESTAMP"},
                "parameterValue": {"value": "2025-12-05 00:00:00.000000+00:00"},
            },
            {
                "name": "keys_0",
                "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
                "parameterValue": {"arrayValues": [{"value": "1"}, {"value": "2"}, {"value": "3"}]},
            },
        ],
        "maxResults": 10000,
        "timeoutMs": 60000,
        "formatOptions": {"useInt64Timestamp": True},
    }
    assert (m4, u4) == ("GET", f"{BQ}/queries/job_1")
    assert params == {
        "maxResults": 10000,
        "timeoutMs": 60000,
        "formatOptions.useInt64Timestamp": True,
        "location": "EU",
        "pageToken": "page-2",
    }


def test_a_query_still_running_is_waited_for() -> None:
    running = {"kind": "bigquery#queryResponse", "jobComplete": False, "jobReference": REFERENCE}
    done = {
        "kind": "bigquery#getQueryResultsResponse",
        "jobComplete": True,
        "jobReference": REFERENCE,
        "schema": SCHEMA,
        "totalRows": "1",
        "rows": [row(3, "2026-01-09", 70.0, 2)],
    }
    session = Recorder(group(), FEATURES, running, done)
    joined = join_with(session)
    session.done()
    assert values(joined["spend_30d"]) == [None, None, 70.0, None]
    assert "pageToken" not in session.calls[3][3]


def test_an_unknown_feature_group_is_named() -> None:
    session = Recorder(
        (404, {"error": {"code": 404, "message": "FeatureGroup not found", "status": "NOT_FOUND"}})
    )
    with pytest.raises(
        features.FeatureStoreError, match=f"feature group '{GROUP}' does not exist in proj/europe-west4"
    ):
        join_with(session)


def test_a_feature_the_group_does_not_have_is_refused_before_any_query() -> None:
    session = Recorder(group(), FEATURES)
    with pytest.raises(
        features.FeatureStoreError,
        match=r"has no feature\(s\) \['tenure'\] \(it has \['spend_30d', 'visits'\]\)",
    ):
        join_with(session, features=["spend_30d", "tenure"])
    assert [c[0] for c in session.calls] == ["GET", "GET"]  # no query sent


def test_a_static_group_has_no_point_in_time() -> None:
    session = Recorder(group(staticDataSource=True), FEATURES)
    with pytest.raises(features.FeatureStoreError, match="is static"):
        join_with(session)


def test_a_column_name_that_is_not_an_identifier_never_reaches_the_query() -> None:
    odd = {
        "features": [
            {
                "name": f"{LOC}/featureGroups/{GROUP}/features/spend_30d",
                "versionColumnName": "x; DROP TABLE t",
            },
            {"name": f"{LOC}/featureGroups/{GROUP}/features/visits"},
        ]
    }
    session = Recorder(group(), odd)
    with pytest.raises(features.FeatureStoreError, match="not GoogleSQL identifiers"):
        join_with(session)
    assert len(session.calls) == 2


def test_keys_are_matched_as_bigquery_spells_them() -> None:
    # a key column with a null is float in pandas: 1.0 must still match CAST(1 AS STRING) = "1"
    rows = source_rows().astype({"customer_id": "float64"})
    rows.loc[2, "customer_id"] = None
    _, parameters = gcp_features._vertex_query(
        example_spec(feature_store={"joins": [JOIN]}).feature_store.joins[0],
        "`p.d.t`",
        {"spend_30d": "spend_30d"},
        rows,
    )
    assert parameters[-1]["parameterValue"] == {"arrayValues": [{"value": "1"}, {"value": "2"}]}


def test_a_vertex_join_needs_the_gcp_profile() -> None:
    spec = example_spec(feature_store={"joins": [JOIN]})
    with pytest.raises(features.FeatureStoreError, match="needs the gcp profile"):
        feature_stores.apply(spec, source_rows(), clients=lambda service: None)


def test_a_retried_query_keeps_its_request_id_and_a_new_query_gets_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 503 on ``jobs.query`` is retried with the same body (so BigQuery runs the query once);
    the next join is a new query and must not reuse the id (BigQuery would answer the old one)."""
    from mlops_core.base import retry

    monkeypatch.setattr(
        retry, "default_policy", lambda: retry.RetryPolicy(attempts=3, base=0.0, sleep=lambda s: None)
    )
    answer = {
        "kind": "bigquery#queryResponse",
        "jobComplete": True,
        "jobReference": REFERENCE,
        "schema": SCHEMA,
        "totalRows": "1",
        "rows": [row(1, "2026-01-09", 20.0, 4)],
    }
    unavailable = (503, {"error": {"code": 503, "message": "Service unavailable", "status": "UNAVAILABLE"}})
    first = Recorder(group(), FEATURES, unavailable, answer)
    join_with(first)
    first.done()
    queries = [body for method, url, body, _ in first.calls if (method, url) == ("POST", f"{BQ}/queries")]
    assert len(queries) == 2 and queries[0] == queries[1]  # the retry: the same body, the same requestId
    second = Recorder(group(), FEATURES, answer)
    join_with(second)
    second.done()
    (again,) = [body for method, url, body, _ in second.calls if (method, url) == ("POST", f"{BQ}/queries")]
    assert again["requestId"] != queries[0]["requestId"] and again["query"] == queries[0]["query"]
