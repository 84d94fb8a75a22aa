"""The live challenger end to end on the real libraries (MLflow, sklearn, the lake), without Airflow.

A champion v1 is trained and deployed; a second version passes the gate (a recorded human
override, so the test does not depend on which fit is better) and its deploy makes it the *live*
challenger instead of the champion. Monitoring scoring splits the rows by their key; labels land;
the performance step records each arm's sums; ``challenger.judge`` decides and acts. The labels
are made by hand from the predictions (one arm always right, the other always wrong) so the
verdict is known; the statistics are tested in test_sequential.py.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import challenger, lifecycle, rollout, scoring
from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.model.training import train
from mlops_core.monitor import feedback
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DELAY = 1
DAYS = [date(2026, 3, d) for d in (1, 2, 3)]


def _spec():
    return example_spec(
        name="live_ch",
        deployment={
            "target": "local",
            "challenger": {"split_percent": 30, "metric": "accuracy", "min_rows": 30, "max_rows": 5000},
        },
        feedback={"uri": "${MLOPS_LANDING}/ch/labels.csv", "key_columns": ["record_id"], "delay_days": DELAY},
    )


def _version(spec, lake: str, ds: str, **gate) -> str:
    raw = lifecycle.ingest(spec, ds, lake)["uri"]
    trained = train(spec, raw, lake, ds, {}).to_dict()
    decision = lifecycle.gate(spec, lifecycle.evaluate(spec, trained, lake, ds), trained["run_id"], **gate)
    return str(lifecycle.register(spec, trained, decision.to_dict(), f"t/{ds}", {})["version"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    local = tmp_path_factory.mktemp("challenger")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        spec = _spec()
        datasets.materialize("breast_cancer", settings.landing_root())
        lake = settings.lake_root()
        first = rollout.deploy(spec, _version(spec, lake, "2026-02-27"))
        second = rollout.deploy(
            spec, _version(spec, lake, "2026-02-28", force=True, forced_by="test", force_reason="live test")
        )
        yield spec, local, first, second


@pytest.fixture
def fresh(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec, local, first, second = world
    copy = tmp_path / "local"
    shutil.copytree(local, copy)
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(copy))
    yield spec, settings.lake_root(), Path(settings.landing_root().removeprefix("file://")), first, second


def test_deploy_makes_a_live_challenger_and_the_champion_stays(world) -> None:
    spec, _, first, second = world
    assert first["version"] == "1" and first["endpoint"].endswith("@champion")
    assert (
        second["version"] == "2"
        and second["extra"] == {"challenger": True}
        and second["previous_version"] == "1"
    )
    assert second["endpoint"].endswith("@live_challenger")
    assert rollout.promote(spec, second) == second  # the smoke test's promotion leaves it on the split
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
    assert "mlops.promoted" not in registry.client().get_model_version(spec.name, "2").tags


def _monitor(spec, lake: str, landing: Path, winner: str, act: bool = True) -> list[dict]:
    """Score DAYS with the split; labels agree with ``winner``'s arm and disagree with the other's."""
    labels, verdicts = [], []
    for day in DAYS:
        batch = datasets.daily_batch("breast_cancer", day, rows=300)
        batch["record_id"] = [f"{day:%m%d}-{i}" for i in range(len(batch))]
        data = storage.write_partition({"data": batch}, lake, spec.name, "monitor", day.isoformat())
        scoring.batch_score(spec, data.uri, lake, day.isoformat(), stage="monitor_predictions")
        pred = storage.read_frame(
            storage.partition_uri(lake, spec.name, feedback.PREDICTIONS, day.isoformat())
        )
        other = pred["prediction"].map({"malignant": "benign", "benign": "malignant"})
        right = pred["variant"] == winner
        labels.append(
            pd.DataFrame(
                {"record_id": pred["record_id"], "diagnosis": pred["prediction"].where(right, other)}
            )
        )
        (landing / "ch").mkdir(parents=True, exist_ok=True)
        pd.concat(labels).to_csv(landing / "ch" / "labels.csv", index=False)
        d = (day + timedelta(days=DELAY)).isoformat()
        feedback.record(spec, lake, feedback.evaluate_day(spec, lake, d))
        verdicts.append(challenger.judge(spec, lake, d, act=act))
        if verdicts[-1]["status"] != "continue":
            break
    return verdicts


def test_scoring_splits_rows_stably_by_key(fresh) -> None:
    spec, lake, _, _, _ = fresh
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
    assert registry.alias_version(spec.name, registry.LIVE_CHALLENGER) == "2"
    batch = datasets.daily_batch("breast_cancer", DAYS[0], rows=400)
    batch["record_id"] = [f"k{i}" for i in range(len(batch))]
    data = storage.write_partition({"data": batch}, lake, spec.name, "monitor", DAYS[0].isoformat())
    scoring.batch_score(spec, data.uri, lake, DAYS[0].isoformat(), stage="monitor_predictions")
    scoring.batch_score(spec, data.uri, lake, DAYS[1].isoformat(), stage="monitor_predictions")
    a, b = (
        storage.read_frame(storage.partition_uri(lake, spec.name, feedback.PREDICTIONS, d.isoformat()))
        for d in DAYS[:2]
    )
    assert set(a["variant"]) == {"champion", "challenger"} and (a["variant"] == b["variant"]).all()
    assert 0.2 < (a["variant"] == "challenger").mean() < 0.4
    assert set(a.loc[a["variant"] == "challenger", "model_version"]) == {"2"}
    assert set(a.loc[a["variant"] == "champion", "model_version"]) == {"1"}


def test_a_better_challenger_is_promoted(fresh) -> None:
    spec, lake, landing, _, _ = fresh
    verdicts = _monitor(spec, lake, landing, winner="challenger")
    last = verdicts[-1]
    assert last["status"] == "promote" and last["p_value"] < 0.05 and last["interval"][0] > 0
    assert registry.alias_version(spec.name, registry.CHAMPION) == "2"
    assert registry.alias_version(spec.name, registry.LIVE_CHALLENGER) is None
    tags = registry.client().get_model_version(spec.name, "2").tags
    assert tags["mlops.challenger"] == "promoted" and "always-valid p" in tags["mlops.challenger_reasons"]
    day = [d for d in feedback.history(spec, lake) if d["ds"] == DAYS[0].isoformat()][0]
    assert day["model_version"] == "1" and day["arms"]["challenger"]["version"] == "2"
    assert day["value"] == 0.0  # decay judges the champion's own rows (all wrong here), not the mix
    assert day["rows"] == day["arms"]["champion"]["rows"] > 0  # and counts those (decay.min_rows)


def test_a_worse_challenger_is_rolled_back_and_the_champion_stays(fresh) -> None:
    spec, lake, landing, _, _ = fresh
    verdicts = _monitor(spec, lake, landing, winner="champion", act=False)
    assert verdicts[-1]["status"] == "rollback" and verdicts[-1]["acted"] is False
    assert registry.alias_version(spec.name, registry.LIVE_CHALLENGER) == "2"  # a backfill only reports
    d = (DAYS[0] + timedelta(days=DELAY)).isoformat()
    verdict = challenger.judge(spec, lake, d)
    assert verdict["status"] == "rollback" and "harm" in verdict["reasons"][0]
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
    assert registry.alias_version(spec.name, registry.LIVE_CHALLENGER) is None
    assert registry.client().get_model_version(spec.name, "2").tags["mlops.challenger"] == "rolled_back"
    assert challenger.judge(spec, lake, "2026-03-09")["status"] == "no_challenger"
