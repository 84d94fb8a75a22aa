"""Azure ML ``deployment.shadow.mirror_percent``: the shadow judged on mirrored live requests.

The deploy puts the shadow's deployment ``green-v2`` beside the champion's ``green-v1`` with a data
collector (its two data assets first, as azure-ai-ml registers them), then mirrors
``mirror_percent`` of the endpoint's requests to it with the traffic unchanged; the verdict reads the
collected JSON lines of the day, pairs ``model_inputs`` with ``model_outputs`` by ``correlationid``
and recomputes the champion's answers on the same inputs; a rejection turns mirroring off and
deletes ``green-v2`` (nothing else); a promotion turns mirroring off and goes the blue/green way of
any deploy, a failed smoke test rolling it back. Requests are recorded and each is held to the REST
models of the api-version it is sent with (:func:`tests.contract.azure_models.api_version_of`: the
one preview call is the deployment PUT with ``dataCollector``) by test_azureml.py's recorder.
The collected files are read from a ``file://`` root laid out as Azure ML documents them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from mlops_core import shadow
from mlops_core.clouds.azure.client import API_VERSION, PREVIEW_API_VERSION
from mlops_core.clouds.azure.shadow import collected
from mlops_core.deploy import READY, UPDATING, Deployment
from mlops_core.monitor import shadow as compare_shadow
from mlops_core.runs import registry
from mlops_core.spec import SpecError
from tests.contract.shadow_verdict import DAY, aliases, force_verdict, holdout, in_shadow
from tests.contract.test_azureml import (  # noqa: F401 (fixtures)
    EP,
    EP_PATH,
    OP,
    PROFILE,
    SCORING,
    WSID,
    Recorder,
    Target,
    deployment_resource,
    endpoint,
    mlflow_store,
    model_put,
    model_version,
    to_canary,
)
from tests.helpers import example_spec, load_as_serving_container

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.contract

NAME = "breast_cancer"
GREEN = f"{EP_PATH}/deployments/green-v2"


def spec_for(percent: int = 10) -> Any:
    return example_spec(
        cloud="azure",
        deployment={
            "target": "azureml",
            "strategy": "canary",
            "canary_percent": 10,
            "shadow": {"mirror_percent": percent},
        },
    )


def target(rec: Recorder, root: str | None = None) -> Target:
    settings = {**PROFILE.settings, **({"data_collector_root": root} if root else {})}
    return Target(replace(PROFILE, settings=settings), lambda service: rec)


def mirrored(traffic: dict[str, int], mirror: dict[str, int], state: str = "Succeeded") -> dict[str, Any]:
    ep = endpoint(traffic, state)
    ep["properties"]["mirrorTraffic"] = mirror
    return ep


def data_put(collection: str) -> tuple[str, str]:
    return ("PUT", f"data/{EP}-green-v2-{collection}/versions/1")


def data_asset(collection: str) -> dict[str, Any]:
    uri = f"azureml://datastores/workspaceblobstore/paths/modelDataCollector/{EP}/green-v2/{collection}"
    return {"properties": {"dataType": "uri_folder", "dataUri": uri}}


# -- the spec ---------------------------------------------------------------------------------------


def test_mirror_percent_is_azure_ml_s_and_at_most_its_50_percent() -> None:
    assert spec_for(50).deployment.shadow.mirror_percent == 50
    assert example_spec(deployment={"shadow": {"mirror_percent": 5}}).deployment.shadow.mirror_percent == 5
    assert (
        example_spec(deployment={"target": "azureml", "shadow": {}}).deployment.shadow.mirror_percent is None
    )
    for target_name in ("vertex", "kserve", "sagemaker"):
        with pytest.raises(SpecError, match="set target: azureml, or remove mirror_percent"):
            example_spec(deployment={"target": target_name, "shadow": {"mirror_percent": 10}})
    for bad in (0, 51):
        with pytest.raises(SpecError, match="mirror_percent"):
            spec_for(bad)


# -- deploy: the collecting deployment, then the mirror ---------------------------------------------


def test_deploy_puts_a_collecting_deployment_with_the_preview_version_then_mirrors_with_traffic_unchanged(
    mlflow_store: Any,
) -> None:
    in_shadow(NAME, "1", "1")
    registry.client().delete_registered_model_alias(NAME, registry.SHADOW)
    rec = Recorder()
    t = target(rec)
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect(*model_put("2"), 200, model_version("2"))
    rec.expect(*data_put("model_inputs"), 201, data_asset("model_inputs"))
    rec.expect(*data_put("model_outputs"), 201, data_asset("model_outputs"))
    rec.expect(
        "PUT", GREEN, 201, deployment_resource("Creating", "green-v2", "2"), {"Azure-AsyncOperation": OP}
    )
    dep = t.deploy_shadow(spec_for(), "2", "1")
    rec.done()

    assert [(c.method, c.url) for c in rec.calls] == [
        ("GET", EP_PATH), model_put("2"), data_put("model_inputs"), data_put("model_outputs"), ("PUT", GREEN),
    ]  # fmt: skip
    # the one preview call: validated against that version's REST models, the rest against the GA ones
    assert rec.versions == [API_VERSION] * 4 + [PREVIEW_API_VERSION]
    assert rec.calls[-1].params == {"api-version": PREVIEW_API_VERSION}
    assert rec.calls[2].json == {
        "properties": {
            "dataType": "uri_folder",
            "dataUri": data_asset("model_inputs")["properties"]["dataUri"],
            "description": f"model_inputs collected from {EP}/green-v2 (mlops shadow)",
            "tags": {"mlops.pipeline": NAME},
        }
    }
    assert rec.calls[-1].json == {
        "location": "westeurope",
        "kind": "Managed",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"{WSID}/models/breast_cancer/versions/2",
            "instanceType": "Standard_DS3_v2",
            "scaleSettings": {"scaleType": "Default"},
            "dataCollector": {
                "collections": {
                    c: {
                        "dataCollectionMode": "Enabled",
                        "dataId": f"{WSID}/data/{EP}-green-v2-{c}/versions/1",
                        "samplingRate": 1.0,
                    }
                    for c in ("model_inputs", "model_outputs")
                },  # fmt: skip
                "rollingRate": "Hour",
            },
        },
    }
    assert dep.state == UPDATING and dep.extra["shadow"] and dep.extra["mirror"]
    assert (dep.extra["deployment"], dep.extra["previous_deployment"]) == ("green-v2", "green-v1")
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": "2"}
    rec.reset()

    # the polls: green-v2 up, then mirrorTraffic set in a PUT that keeps the traffic as it is
    rec.expect("GET", GREEN, 200, deployment_resource("Succeeded", "green-v2", "2"))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect("PUT", EP_PATH, 201, mirrored({"green-v1": 100}, {"green-v2": 10}, "Updating"),
               {"Azure-AsyncOperation": OP})  # fmt: skip
    assert t.status(dep) == UPDATING
    assert rec.calls[-1].json["properties"]["traffic"] == {"green-v1": 100}
    assert rec.calls[-1].json["properties"]["mirrorTraffic"] == {"green-v2": 10}
    rec.expect("GET", GREEN, 200, deployment_resource("Succeeded", "green-v2", "2"))
    rec.expect("GET", EP_PATH, 200, mirrored({"green-v1": 100}, {"green-v2": 10}))
    assert t.status(dep) == READY
    rec.done()
    assert set(rec.versions) == {API_VERSION}


# -- the verdict's traffic: the collected files ------------------------------------------------------


def _event(collection: str, cid: str, data: Any, hour: str) -> str:
    """One collected event as the data collector writes it (a CloudEvents-style JSON line)."""
    return json.dumps({
        "specversion": "1.0", "id": f"{collection}-{cid}", "type": f"azureml.inference.{collection}",
        "source": f"{WSID}/onlineEndpoints/{EP}/deployments/green-v2", "datacontenttype": "application/json",
        "time": f"{DAY}T{hour}:00:01Z", "data": data, "path": "/score", "method": "POST",
        "contentrange": "bytes 0-59/*", "correlationid": cid, "xrequestid": cid, "modelversion": "default",
        "collectdatatype": "pandas.core.frame.DataFrame", "agent": "azureml-ai-monitoring/1.0.0",
    })  # fmt: skip


def _collected(root: Path, collection: str, files: dict[str, list[str]]) -> None:
    """``<root>/<endpoint>/<deployment>/<collection>/YYYY/MM/DD/HH/<file>.jsonl`` (documented layout)."""
    for where, lines in files.items():
        path = root / EP / "green-v2" / collection / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def _day_of_traffic(root: Path) -> None:
    """Three requests on DAY (across two hours, outputs out of order, one answer not collected) and
    one on the next day, which DAY's verdict must not read."""
    first, second, lost = (
        [{"a": 0.5, "b": 2.5}, {"a": 14.0, "b": 15.0}],
        [{"a": 13.0, "b": 16.0}],
        [{"a": 1.0, "b": 1.0}],
    )
    _collected(root, "model_inputs", {
        "2026/01/05/10/i-1.jsonl": [_event("model_inputs", "c-1", first, "10"), ""],
        "2026/01/05/11/i-2.jsonl": [_event("model_inputs", "c-2", second, "11"),
                                    _event("model_inputs", "c-3", lost, "11")],
        "2026/01/06/09/i-3.jsonl": [_event("model_inputs", "c-4", second, "09")],
    })  # fmt: skip
    _collected(root, "model_outputs", {
        "2026/01/05/11/o-1.jsonl": [_event("model_outputs", "c-2", [1], "11"),
                                    _event("model_outputs", "c-1", [0, 0], "10")],
        "2026/01/06/09/o-2.jsonl": [_event("model_outputs", "c-4", [1], "09")],
    })  # fmt: skip


def test_the_verdict_pairs_the_shadow_s_collected_inputs_and_outputs_by_correlation_id(
    mlflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_verdict(monkeypatch, shadow.WAIT)  # (the champion loaded as a serving image would)
    in_shadow(NAME, "1", "2")
    root = tmp_path / "collector"
    _day_of_traffic(root)
    assert sorted(collected(f"{root.as_uri()}/{EP}/green-v2/model_inputs", DAY, "model_inputs")) == [
        "c-1", "c-2", "c-3",
    ]  # fmt: skip
    rec = Recorder()
    t = target(rec, root.as_uri())
    pairs = t.shadow_traffic(spec_for(), DAY)

    champion = load_as_serving_container(f"models:/{NAME}/1")
    want = [int(v) for v in champion.predict(pd.DataFrame({"a": [0.5, 14.0], "b": [2.5, 15.0]}))]
    assert [(rows, [int(v) for v in ours], theirs) for rows, ours, theirs in pairs] == [
        ([{"a": 0.5, "b": 2.5}, {"a": 14.0, "b": 15.0}], want, [0, 0]),
        ([{"a": 13.0, "b": 16.0}], [int(champion.predict(pd.DataFrame({"a": [13.0], "b": [16.0]}))[0])], [1]),
    ]  # c-3 was not answered (no output collected) and c-4 is the next day's
    assert rec.calls == []  # reading the collected files is the lake's business

    lake = (tmp_path / "lake").as_uri()
    result = shadow.judge(spec_for(), lake, DAY, target=t)
    assert result["judged_on"] == "mirrored traffic" and result["rows"] == 3
    paired = compare_shadow.collect(spec_for(), lake, "2", "1", DAY, traffic=True)
    assert paired.days == [DAY] and paired.rows == 3
    assert rec.calls == []


def test_without_a_root_setting_the_files_are_read_from_the_workspaceblobstore_container(
    mlflow_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_verdict(monkeypatch, shadow.WAIT)
    in_shadow(NAME, "1", "2")
    read: list[str] = []

    def reading(root: str, ds: str, collection: str) -> dict[str, list[Any]]:
        read.append(root)
        return {}

    monkeypatch.setattr("mlops_core.clouds.azure.shadow.collected", reading)
    rec = Recorder()
    store = {"name": "workspaceblobstore", "properties": {"datastoreType": "AzureBlob", "accountName": "mlopslake",
             "containerName": "azureml-blobstore-1", "credentials": {"credentialsType": "None"}}}  # fmt: skip
    rec.expect("GET", "datastores/workspaceblobstore", 200, store)
    assert target(rec).shadow_traffic(spec_for(), DAY) == []
    rec.done()
    base = f"abfs://azureml-blobstore-1/modelDataCollector/{EP}/green-v2"
    assert read == [f"{base}/model_inputs", f"{base}/model_outputs"]


# -- the verdict acts ---------------------------------------------------------------------------------


def test_a_rejecting_verdict_turns_mirroring_off_and_deletes_the_shadow_deployment_only(
    mlflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = force_verdict(monkeypatch, shadow.REJECT)
    in_shadow(NAME, "1", "2")
    rec = Recorder()
    rec.expect("GET", EP_PATH, 200, mirrored({"green-v1": 100}, {"green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v1": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("DELETE", GREEN, 202, None, {"Location": OP})
    result = shadow.judge(spec_for(), tmp_path.as_uri(), DAY, target=target(rec, tmp_path.as_uri()))
    rec.done()

    assert result["status"] == shadow.REJECT and "deployment" not in result and moves == []
    assert [(c.method, c.url) for c in rec.calls] == [
        ("GET", EP_PATH), ("PUT", EP_PATH), ("GET", OP), ("DELETE", GREEN),
    ]  # fmt: skip
    sent = rec.calls[1].json["properties"]
    assert sent["traffic"] == {"green-v1": 100} and sent["mirrorTraffic"] == {}  # the champion untouched
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rejected"


def _promoting(
    rec: Recorder, t: Target, lake: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Deployment, list[Any]]:
    """A promoting verdict: mirroring off, then green-v2 on the canary path up to its smoke test."""
    moves = force_verdict(monkeypatch, shadow.PROMOTE)
    features = {"a": [0.5, 14.0], "b": [2.5, 15.0]}
    in_shadow(NAME, "1", "2", holdout(lake, NAME, features, "diagnosis", [0, 1]))
    rec.expect("GET", EP_PATH, 200, mirrored({"green-v1": 100}, {"green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v1": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("GET", GREEN, 200, deployment_resource("Succeeded", "green-v2", "2"))
    result = shadow.judge(spec_for(), lake, DAY, target=t)
    assert (
        rec.calls[1].json["properties"]["mirrorTraffic"] == {}
    )  # no deployment takes live and mirrored traffic
    moving = result["deployment"]
    assert result["status"] == shadow.PROMOTE and moving["state"] == UPDATING
    assert moving["extra"]["previous_deployment"] == "green-v1" and moves == []
    rec.reset()
    dep = Deployment(**moving)
    to_canary(t, rec, dep)
    return dep, moves


def test_a_promoting_verdict_takes_the_blue_green_path_and_moves_champion_once(
    mlflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, rec = tmp_path.as_uri(), Recorder()
    t = target(rec, (tmp_path / "collector").as_uri())
    dep, moves = _promoting(rec, t, lake, monkeypatch)
    served = load_as_serving_container(f"models:/{NAME}/2").predict(
        pd.DataFrame({"a": [0.5, 14.0], "b": [2.5, 15.0]})
    )
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("POST", f"{EP_PATH}/listKeys", 200, {"primaryKey": "k-primary", "secondaryKey": "k2"})
    rec.expect("POST", SCORING, 200, [int(v) for v in served])
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v2": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("DELETE", f"{EP_PATH}/deployments/green-v1", 202, None, {"Location": OP})
    done = shadow.complete_promotion(spec_for(), dep.to_dict(), t, lake)
    rec.done()
    assert rec.calls[2].headers["azureml-model-deployment"] == "green-v2"
    assert rec.calls[5].json["properties"]["traffic"] == {"green-v2": 100}
    assert "mirrorTraffic" not in rec.calls[5].json["properties"]
    assert done["state"] == READY and moves == [(NAME, "2")]
    assert aliases(NAME) == {"champion": "2", "previous_champion": "1", "shadow": None}


def test_a_failed_smoke_test_of_the_promoted_shadow_rolls_back_to_the_champion_s_deployment(
    mlflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, rec = tmp_path.as_uri(), Recorder()
    t = target(rec, (tmp_path / "collector").as_uri())
    dep, moves = _promoting(rec, t, lake, monkeypatch)
    served = load_as_serving_container(f"models:/{NAME}/2").predict(
        pd.DataFrame({"a": [0.5, 14.0], "b": [2.5, 15.0]})
    )
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("POST", f"{EP_PATH}/listKeys", 200, {"primaryKey": "k-primary", "secondaryKey": "k2"})
    rec.expect("POST", SCORING, 200, [1 - int(v) for v in served])  # green-v2 answers what v2 does not
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v1": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("DELETE", GREEN, 202, None, {"Location": OP})
    with pytest.raises(shadow.PromotionFailed, match="rolled back to champion v1"):
        shadow.complete_promotion(spec_for(), dep.to_dict(), t, lake)
    rec.done()
    assert rec.calls[5].json["properties"]["traffic"] == {"green-v1": 100}
    assert moves == [] and aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rolled_back"


def test_a_shadow_whose_deploy_failed_is_taken_out_with_its_mirror_and_deployment(mlflow_store: Any) -> None:
    from mlops_core import rollout

    in_shadow(NAME, "1", "2")
    rec = Recorder()
    dep = Deployment("azureml", NAME, "2", "1", EP, "canary", UPDATING,
                     {"shadow": True, "mirror": True, "endpoint": EP, "deployment": "green-v2",
                      "previous_deployment": "green-v1", "mirror_percent": 10})  # fmt: skip
    rec.expect("GET", EP_PATH, 200, mirrored({"green-v1": 100}, {"green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v1": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("DELETE", GREEN, 202, None, {"Location": OP})
    rollout.rollback(spec_for(), dep.to_dict(), target(rec))
    rec.done()
    assert rec.calls[1].json["properties"]["traffic"] == {"green-v1": 100}
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rolled_back"
