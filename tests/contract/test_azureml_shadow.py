"""Azure ML ``deployment.shadow``: the endpoint keeps the champion; the verdict acts on it.

Without ``mirror_percent`` the shadow on Azure ML is scored in batch, not on mirrored live traffic
(with it: test_azureml_mirrored_shadow.py). So the shadow is scored beside the champion as on ``local`` (tests/unit/test_shadow_flow.py); what is Azure ML's
own is what a verdict does to the endpoint. A promotion deploys the shadow's version as
``green-v2`` with the spec's strategy (a canary here), waits for the split, smoke-tests
``green-v2`` through its header, then gives it all traffic, deletes the champion's deployment and
moves ``champion`` (once); a rejection sends no request. Requests are recorded and held to the
REST models of the API version the package sends by test_azureml.py's recorder, whose target,
fixtures and registry these tests reuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from mlops_core import shadow
from mlops_core.deploy import READY, UPDATING, Deployment
from mlops_core.runs import registry
from tests.contract.shadow_verdict import DAY, aliases, force_verdict, holdout, in_shadow
from tests.contract.test_azureml import (  # noqa: F401 (fixtures)
    EP_PATH,
    OP,
    SCORING,
    Recorder,
    deployment_resource,
    endpoint,
    mlflow_store,
    model_put,
    model_version,
    target,
    to_canary,
)
from tests.helpers import example_spec, load_as_serving_container

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.contract

NAME = "breast_cancer"


def spec_for() -> Any:
    return example_spec(
        cloud="azure",
        deployment={"target": "azureml", "strategy": "canary", "canary_percent": 10, "shadow": {}},
    )


def test_deploy_leaves_the_endpoint_on_the_champion_and_sets_the_shadow_alias(mlflow_store: Any) -> None:
    in_shadow(NAME, "1", "1")
    registry.client().delete_registered_model_alias(NAME, registry.SHADOW)
    rec = Recorder()
    t = target(rec)
    dep = t.deploy_shadow(spec_for(), "2", "1")
    assert rec.calls == [] and t.services == []  # type: ignore[attr-defined]  # no client, no request
    assert (dep.target, dep.state, dep.extra) == ("azureml", READY, {"shadow": True})
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": "2"}


def test_a_promoting_verdict_deploys_the_shadow_as_a_canary_then_moves_traffic_and_champion_once(
    mlflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path.as_uri()
    moves = force_verdict(monkeypatch, shadow.PROMOTE)
    features = {"a": [0.5, 14.0], "b": [2.5, 15.0]}
    in_shadow(NAME, "1", "2", holdout(lake, NAME, features, "diagnosis", [0, 1]))
    served = load_as_serving_container(f"models:/{NAME}/2").predict(pd.DataFrame(features))
    rec = Recorder()
    t = target(rec)
    # the verdict deploys v2 through the target's own path: model version, endpoint read, green-v2 at 0 %
    rec.expect(*model_put("2"), 200, model_version("2"))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect(
        "PUT",
        f"{EP_PATH}/deployments/green-v2",
        201,
        deployment_resource("Creating", "green-v2", "2"),
        {"Azure-AsyncOperation": OP},
    )
    result = shadow.judge(spec_for(), lake, DAY, target=t)

    moving = result["deployment"]
    assert result["status"] == shadow.PROMOTE and moving["state"] == UPDATING
    assert [(c.method, c.url) for c in rec.calls] == [
        model_put("2"),
        ("GET", EP_PATH),
        ("PUT", f"{EP_PATH}/deployments/green-v2"),
    ]
    assert rec.calls[-1].json["properties"]["model"].endswith("/models/breast_cancer/versions/2")
    assert moving["previous_version"] == "1" and moving["extra"]["previous_deployment"] == "green-v1"
    assert moves == [] and aliases(NAME)["champion"] == "1"  # the endpoint serves v1 still
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "promoting"
    rec.reset()

    # the trigger's polls: green-v2 Succeeded, the canary split set (10 % to green-v2), then ready
    dep = Deployment(**moving)
    to_canary(t, rec, dep)
    assert dep.state == READY

    # the smoke test scores green-v2 (by its header) on the version's held-out rows...
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("POST", f"{EP_PATH}/listKeys", 200, {"primaryKey": "k-primary", "secondaryKey": "k2"})
    rec.expect("POST", SCORING, 200, [int(v) for v in served])
    # ...then promote: green-v2 100 % (the operation waited for), green-v1 deleted
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v2": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("DELETE", f"{EP_PATH}/deployments/green-v1", 202, None, {"Location": OP})
    done = shadow.complete_promotion(spec_for(), dep.to_dict(), t, lake)
    rec.done()

    score = rec.calls[2]
    assert score.headers == {"Authorization": "Bearer k-primary", "azureml-model-deployment": "green-v2"}
    assert score.json == {"input_data": {"columns": ["a", "b"], "data": [[0.5, 2.5], [14.0, 15.0]]}}
    assert rec.calls[5].json["properties"]["traffic"] == {"green-v2": 100}
    assert done["state"] == READY and done["extra"]["deployment"] == "green-v2"
    assert moves == [(NAME, "2")]
    assert aliases(NAME) == {"champion": "2", "previous_champion": "1", "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "promoted"


def test_a_rejecting_verdict_sends_no_request_and_removes_the_shadow(
    mlflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = force_verdict(monkeypatch, shadow.REJECT)
    in_shadow(NAME, "1", "2")
    rec = Recorder()
    t = target(rec)
    result = shadow.judge(spec_for(), tmp_path.as_uri(), DAY, target=t)
    assert result["status"] == shadow.REJECT and moves == []
    assert rec.calls == [] and t.services == []  # type: ignore[attr-defined]  # not even a client built
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rejected"
