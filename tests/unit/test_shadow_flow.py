"""The shadow deployment end to end on the real libraries (MLflow, sklearn, the lake), without Airflow.

A champion v1 is trained and deployed; a second, deliberately different version (two depth-1
trees, so the two disagree on some rows) passes the gate (a recorded human override) and its
deploy puts it in *shadow*: the champion keeps serving. Monitoring scoring scores every row with
both; labels land; ``shadow.judge`` waits for its days, then decides and acts. The labels are
made by hand from one model's predictions (that model always right) so the verdict is known; the
rule itself is tested in test_shadow.py.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import lifecycle, rollout, scoring, shadow
from mlops_core.base import settings
from mlops_core.data import filesystems, storage
from mlops_core.model import modelcard
from mlops_core.model.training import train
from mlops_core.monitor import feedback
from mlops_core.monitor import shadow as compare
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

NAME = "shadow_fl"
DELAY = 1
DAYS = [date(2026, 3, d) for d in (1, 2, 3)]


def _spec(**shadow_cfg):
    # wide agreement bounds: two very different models, judged here on their labels
    cfg = {"days": 2, "min_rows": 300, "min_labelled_rows": 50, "metric": "accuracy", "max_disagreement": 0.5,
           "max_score_shift": 1.0, **shadow_cfg}  # fmt: skip
    return example_spec(
        name=NAME,
        deployment={"target": "local", "shadow": cfg},
        feedback={"uri": "${MLOPS_LANDING}/sh/labels.csv", "key_columns": ["record_id"], "delay_days": DELAY},
    )


def _version(spec, lake: str, ds: str, **gate) -> str:
    raw = lifecycle.ingest(spec, ds, lake)["uri"]
    trained = train(spec, raw, lake, ds, {}).to_dict()
    decision = lifecycle.gate(spec, lifecycle.evaluate(spec, trained, lake, ds), trained["run_id"], **gate)
    return str(lifecycle.register(spec, trained, decision.to_dict(), f"t/{ds}", {})["version"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    local = tmp_path_factory.mktemp("shadow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        spec = _spec()
        weak = spec.model_copy(
            update={"model": spec.model.model_copy(update={"params": {"n_estimators": 2, "max_depth": 1}})}
        )
        datasets.materialize("breast_cancer", settings.landing_root())
        lake = settings.lake_root()
        first = rollout.deploy(spec, _version(spec, lake, "2026-02-27"))
        v2 = _version(weak, lake, "2026-02-28", force=True, forced_by="test", force_reason="shadow test")
        second = rollout.deploy(spec, v2)
        yield spec, local, first, second


@pytest.fixture
def fresh(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec, local, first, second = world
    copy = tmp_path / "local"
    shutil.copytree(local, copy)
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(copy))
    yield spec, settings.lake_root(), Path(settings.landing_root().removeprefix("file://"))


def _score(spec, lake: str, day: date, rows: int = 300) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Score a day's batch as the monitoring DAG does; (the served predictions, the shadow's or None)."""
    batch = datasets.daily_batch("breast_cancer", day, rows=rows)
    data = storage.write_partition({"data": batch}, lake, spec.name, "monitor", day.isoformat())
    scoring.batch_score(spec, data.uri, lake, day.isoformat(), stage=feedback.PREDICTIONS)
    served = storage.read_frame(storage.partition_uri(lake, spec.name, feedback.PREDICTIONS, day.isoformat()))
    try:
        side = storage.read_frame(storage.partition_uri(lake, spec.name, compare.STAGE, day.isoformat()))
    except FileNotFoundError:
        side = None
    return served, side


def _monitor(spec, lake: str, landing: Path, truth: str | None, act: bool = True) -> list[dict]:
    """Score DAYS; with ``truth`` the labels are that model's predictions; judge after each day."""
    labels, verdicts = [], []
    for day in DAYS:
        served, side = _score(spec, lake, day)
        assert side is not None
        if truth is not None:
            right = side if truth == "shadow" else served
            labels.append(pd.DataFrame({"record_id": right["record_id"], "diagnosis": right["prediction"]}))
            (landing / "sh").mkdir(parents=True, exist_ok=True)
            pd.concat(labels).to_csv(landing / "sh" / "labels.csv", index=False)
        verdicts.append(shadow.judge(spec, lake, (day + timedelta(days=DELAY)).isoformat(), act=act))
        if verdicts[-1]["status"] != "wait":
            break
    return verdicts


def _tags(version: str) -> dict[str, str]:
    return dict(registry.client().get_model_version(NAME, version).tags)


def test_deploy_puts_the_version_in_shadow_and_the_champion_stays(world) -> None:
    spec, _, first, second = world
    assert first["version"] == "1" and first["endpoint"].endswith("@champion")
    assert second["version"] == "2" and second["extra"] == {"shadow": True}
    assert second["endpoint"].endswith("@shadow") and second["previous_version"] == "1"
    assert rollout.promote(spec, second) == second  # the smoke test's promotion leaves it in shadow
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"
    assert registry.alias_version(NAME, registry.SHADOW) == "2"
    assert _tags("2")["mlops.shadow"] == "live" and "mlops.promoted" not in _tags("2")


def test_the_served_predictions_are_unchanged_and_both_models_score_every_row(fresh) -> None:
    spec, lake, _ = fresh
    served, side = _score(spec, lake, DAYS[0])
    assert side is not None and len(side) == len(served) == 300
    assert (side["record_id"] == served["record_id"]).all()  # the same rows, in the same order
    assert set(side["model_version"]) == {"2"} and set(served["model_version"]) == {"1"}
    assert {"prediction", "proba_malignant", "proba_benign"} <= set(side.columns)
    assert not any(c.startswith("shadow") for c in served.columns) and "variant" not in served.columns
    assert (side["prediction"] != served["prediction"]).any()  # two different models
    extra = storage.read_manifest(storage.partition_uri(lake, NAME, compare.STAGE, DAYS[0].isoformat())).extra
    assert extra["champion_version"] == "1" and extra["shadow_version"] == "2"
    # the same rows without a shadow: the served partition is the same, column for column
    registry.set_alias_checked(NAME, registry.SHADOW, None, "2")
    alone, stale = _score(spec, lake, DAYS[0])
    assert stale is not None  # the day's sibling from before is still there...
    paired = compare.collect(spec, lake, "2", "1", DAYS[0].isoformat())
    assert not paired.days and "re-scored since the shadow scored it" in paired.skipped[0]  # unpaired
    when = ["scored_at", "input_version"]  # the time, and the input partition the test wrote again
    pd.testing.assert_frame_equal(served.drop(columns=when), alone.drop(columns=when))


def test_a_better_shadow_is_promoted_after_its_days_through_the_gate_record(fresh) -> None:
    spec, lake, landing = fresh
    verdicts = _monitor(spec, lake, landing, truth="shadow")
    assert [v["status"] for v in verdicts] == ["wait", "promote"]
    assert "1/2 monitored day(s)" in verdicts[0]["reasons"][0]
    last = verdicts[-1]
    assert last["days"] == 2 and last["rows"] == 600 and last["labelled"] > 50
    assert last["shadow_value"] == 1.0 and last["low"] > 0 and 0 < last["disagreement"] < 0.5
    assert registry.alias_version(NAME, registry.CHAMPION) == "2"
    assert registry.alias_version(NAME, registry.PREVIOUS) == "1"
    assert registry.alias_version(NAME, registry.SHADOW) is None
    tags = _tags("2")
    assert tags["mlops.shadow"] == "promoted" and tags["mlops.promoted"] == "true"
    assert tags["mlops.shadow_verdict"].startswith("promoted (v2 vs champion v1)")
    card = storage.read_file(filesystems.join(tags[modelcard.CARD_TAG], modelcard.MARKDOWN)).decode()
    assert "- **shadow verdict**: promoted (v2 vs champion v1)" in card


def test_a_worse_shadow_is_rejected_and_the_champion_stays(fresh) -> None:
    spec, lake, landing = fresh
    verdicts = _monitor(spec, lake, landing, truth="champion", act=False)
    assert verdicts[-1]["status"] == "reject" and verdicts[-1]["acted"] is False
    assert registry.alias_version(NAME, registry.SHADOW) == "2"  # a backfill only reports
    verdict = shadow.judge(spec, lake, (DAYS[1] + timedelta(days=DELAY)).isoformat())
    assert verdict["status"] == "reject" and verdict["high"] < 0 and verdict["reasons"][-1].endswith("NO")
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"
    assert registry.alias_version(NAME, registry.SHADOW) is None
    assert _tags("2")["mlops.shadow"] == "rejected"
    assert shadow.judge(spec, lake, "2026-03-09")["status"] == "no_shadow"


def test_a_shadow_that_disagrees_too_much_is_rejected_without_labels(fresh) -> None:
    spec, lake, landing = fresh
    strict = _spec(max_disagreement=0.0)
    verdicts = _monitor(strict, lake, landing, truth=None)
    assert [v["status"] for v in verdicts] == ["wait", "reject"] and verdicts[-1]["labelled"] == 0
    assert "above max_disagreement 0.00%" in " ".join(verdicts[-1]["reasons"])
    assert registry.alias_version(NAME, registry.SHADOW) is None
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"
