"""KServe ``deployment.shadow``: the InferenceService keeps the champion; the verdict acts on it.

KServe has no shadow mode (kserve#2978), so the shadow is scored beside the champion in batch (the
local mechanism, tests/unit/test_shadow_flow.py); what is KServe's own is what a verdict does. A
promotion deploys the shadow's version as the spec's canary, smoke-tests the new revision through
the ingress, then sends it all traffic and moves ``champion`` (once); a rejection sends no request.
The Kubernetes API and the ingress are test_kserve.py's fakes (every body held to the CRD).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mlops_core import shadow
from mlops_core.deploy import READY, UPDATING, Deployment
from mlops_core.runs import registry
from tests.contract.shadow_verdict import DAY, aliases, force_verdict, holdout, in_shadow
from tests.contract.test_kserve import (  # noqa: F401 (fixtures)
    CANARY_V2,
    ISVC,
    ITEM,
    LATEST_HOST,
    MERGE,
    NAME,
    SERVING_V1,
    FakeInference,
    FakeKubeAPI,
    Target,
    api,
    inference,
    isvc,
    kserve_spec,
    kube,
    versions,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.contract


def spec_for() -> Any:
    return kserve_spec(strategy="canary", canary_percent=10, shadow={})


def test_deploy_leaves_the_inference_service_on_the_champion(api: FakeKubeAPI, versions: list[str]) -> None:
    in_shadow(NAME, "1", "1")
    registry.client().delete_registered_model_alias(NAME, registry.SHADOW)
    dep = Target(api).deploy_shadow(spec_for(), "2", "1")
    assert api.calls == []
    assert (dep.target, dep.state, dep.extra) == ("kserve", READY, {"shadow": True})
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": "2"}


def test_a_promoting_verdict_deploys_the_shadow_as_a_canary_then_moves_traffic_and_champion_once(
    api: FakeKubeAPI,
    inference: FakeInference,
    versions: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path.as_uri()
    moves = force_verdict(monkeypatch, shadow.PROMOTE)
    features = {"mean_radius": [10.5, 20.5], "mean_texture": [12.5, 25.5]}
    in_shadow(NAME, "1", "2", holdout(lake, NAME, features, "diagnosis", ["benign", "malignant"]))
    api.expect(SERVING_V1, isvc("2", generation=2, canary=10, previous="1"))
    target = Target(api, kserve_ingress_url=inference.url)
    result = shadow.judge(spec_for(), lake, DAY, target=target)

    moving = result["deployment"]
    assert result["status"] == shadow.PROMOTE and moving["state"] == UPDATING
    assert [c[:2] for c in api.calls] == [("GET", ITEM), ("PATCH", ITEM)]
    assert api.calls[1][3]["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert moves == [] and aliases(NAME)["champion"] == "1"

    api.expect(CANARY_V2)
    assert target.status(Deployment(**moving)) == READY
    inference.requests.clear()
    api.expect(CANARY_V2, CANARY_V2, isvc("2", generation=3, previous="1"))
    done = shadow.complete_promotion(spec_for(), moving, target, lake)

    assert [(path, host) for path, host, _ in inference.requests] == [
        (f"/v2/models/{ISVC}/infer", LATEST_HOST)
    ]
    assert api.calls[-1] == (
        "PATCH", ITEM, MERGE,
        {"metadata": {"resourceVersion": "1002"}, "spec": {"predictor": {"canaryTrafficPercent": None}}},
    )  # fmt: skip
    assert done["state"] == READY
    assert moves == [(NAME, "2")]
    assert aliases(NAME) == {"champion": "2", "previous_champion": "1", "shadow": None}


def test_a_rejecting_verdict_sends_no_request_and_removes_the_shadow(
    api: FakeKubeAPI, versions: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = force_verdict(monkeypatch, shadow.REJECT)
    in_shadow(NAME, "1", "2")
    result = shadow.judge(spec_for(), tmp_path.as_uri(), DAY, target=Target(api))
    assert result["status"] == shadow.REJECT and api.calls == [] and moves == []
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rejected"
