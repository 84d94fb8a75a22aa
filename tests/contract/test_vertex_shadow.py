"""Vertex AI ``deployment.shadow``: the endpoint keeps the champion; the verdict acts on it.

Vertex AI has no traffic mirroring, so the shadow is scored beside the champion in batch (the local
mechanism, tested in tests/unit/test_shadow_flow.py); what is Vertex's own is what a verdict does to
the endpoint. A promotion deploys the shadow's version with the spec's strategy (a canary here),
waits for the operation, smoke-tests the new deployed model, then moves all traffic and
``champion`` (once); a rejection touches no endpoint. Requests are recorded and held to the
``aiplatform.v1`` discovery document by test_vertex.py's recorder, whose target and registry these
tests reuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mlops_core import shadow
from mlops_core.deploy import READY, UPDATING, Deployment
from mlops_core.runs import registry
from tests.contract.shadow_verdict import DAY, aliases, force_verdict, holdout, in_shadow
from tests.contract.test_vertex import (  # noqa: F401 (fixtures)
    DEPLOY_OP,
    DEPLOYED_V2,
    EP,
    MODEL_V1,
    MODEL_V2,
    NAME,
    NEW_ID,
    OLD_ID,
    PARENT,
    ROOT,
    Recorder,
    Target,
    _no_violations,
    canary_spec,
    endpoint,
    filt,
    mlflow_store,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.contract


def spec_for() -> Any:
    return canary_spec(shadow={})


def test_deploy_leaves_the_endpoint_on_the_champion_and_sets_the_shadow_alias(mlflow_store: Path) -> None:
    in_shadow(NAME, "1", "1")
    registry.client().delete_registered_model_alias(NAME, registry.SHADOW)
    session = Recorder()
    dep = Target(session).deploy_shadow(spec_for(), "2", "1")
    assert session.calls == []  # the endpoint is not touched
    assert (dep.target, dep.state, dep.extra) == ("vertex", READY, {"shadow": True})
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": "2"}


def test_a_promoting_verdict_deploys_the_shadow_as_a_canary_then_moves_traffic_and_champion_once(
    mlflow_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path.as_uri()
    moves = force_verdict(monkeypatch, shadow.PROMOTE)
    in_shadow(NAME, "1", "2", holdout(lake, NAME, {"x": [0.5, 2.5]}, "diagnosis", [0, 1]))
    serving_v1 = endpoint({OLD_ID: 100}, (OLD_ID, MODEL_V1))
    canary = endpoint({OLD_ID: 90, NEW_ID: 10}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2))
    session = Recorder(
        {"models": [{"name": MODEL_V2, "displayName": "breast_cancer-v2"}]},
        {"endpoints": [{"name": EP}]},
        serving_v1,
        {"name": DEPLOY_OP, "done": False},
    )
    target = Target(session)
    result = shadow.judge(spec_for(), lake, DAY, target=target)

    moving = result["deployment"]
    assert result["status"] == shadow.PROMOTE and moving["state"] == UPDATING
    assert session.calls[-1] == (
        "POST", f"{ROOT}/{EP}:deployModel", {"deployedModel": DEPLOYED_V2, "trafficSplit": {"0": 10, OLD_ID: 90}},
        None,
    )  # fmt: skip
    assert moves == [] and aliases(NAME)["champion"] == "1"
    session.calls.clear()

    session.responses += [
        {"name": DEPLOY_OP, "done": True},  # the trigger's poll
        canary,  # the smoke test finds the new deployed model...
        {"predictions": [0, 1], "deployedModelId": NEW_ID},  # ...and it answers
        canary,  # promote
        endpoint({NEW_ID: 100}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2)),
        {"name": f"{EP}/operations/8", "done": False},
    ]
    assert target.status(Deployment(**moving)) == READY
    done = shadow.complete_promotion(spec_for(), moving, target, lake)

    assert session.calls == [
        ("GET", f"{ROOT}/{DEPLOY_OP}", None, None),
        ("GET", f"{ROOT}/{EP}", None, None),
        ("POST", f"{ROOT}/{EP}:predict", {"instances": [{"x": 0.5}, {"x": 2.5}]}, None),
        ("GET", f"{ROOT}/{EP}", None, None),
        ("PATCH", f"{ROOT}/{EP}", {"trafficSplit": {NEW_ID: 100}}, {"updateMask": "traffic_split"}),
        ("POST", f"{ROOT}/{EP}:undeployModel", {"deployedModelId": OLD_ID}, None),
    ]
    session.done()
    assert done["state"] == READY and done["extra"]["deployed_model_id"] == NEW_ID
    assert moves == [(NAME, "2")]
    assert aliases(NAME) == {"champion": "2", "previous_champion": "1", "shadow": None}


def test_a_rejecting_verdict_touches_no_endpoint_and_removes_the_shadow(
    mlflow_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = force_verdict(monkeypatch, shadow.REJECT)
    in_shadow(NAME, "1", "2")
    session = Recorder()
    result = shadow.judge(spec_for(), tmp_path.as_uri(), DAY, target=Target(session))
    assert result["status"] == shadow.REJECT and session.calls == [] and moves == []
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rejected"
