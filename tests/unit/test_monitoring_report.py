"""``monitoring.check`` on the real libraries: when the Evidently report is built, and what it ran.

A small champion is trained in-process (the breast cancer example); then one stable day and one
drifted day (12 of 30 features shifted, :func:`mlops_dev.datasets.daily_batch`) are checked
under each ``monitoring.report`` mode. The verdicts (``drift.json``) are always written; the
report only when the mode (or the run's ``report`` param) asks. The report's own JSON (Evidently's
snapshot) must show the engine's method and threshold for every column.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from mlops_core import lifecycle, rollout
from mlops_core.base import settings
from mlops_core.data import drift, drift_report, storage
from mlops_core.model.training import train
from mlops_core.monitor import monitoring
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

TRAIN_DS = "2026-01-31"
STABLE, DRIFTED = date(2026, 2, 1), date(2026, 2, 2)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory):
    """A registered champion and two monitored partitions (stable, drifted) in a module-wide store."""
    local = tmp_path_factory.mktemp("monitoring-report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        spec = example_spec(name="mon_report", monitoring={"report": "drifted", "column_methods": {}})
        landing = settings.landing_root()
        datasets.materialize("breast_cancer", landing)
        lake = settings.lake_root()
        raw = lifecycle.ingest(spec, TRAIN_DS, lake)["uri"]
        trained = train(spec, raw, lake, TRAIN_DS, {}).to_dict()
        decision = lifecycle.gate(spec, lifecycle.evaluate(spec, trained, lake, TRAIN_DS), trained["run_id"])
        registered = lifecycle.register(spec, trained, decision.to_dict(), "test/run", {})
        rollout.deploy(spec, str(registered["version"]))
        assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
        days = {}
        for day, shifted in ((STABLE, False), (DRIFTED, True)):
            frame = datasets.daily_batch("breast_cancer", day, drift=shifted)
            days[day] = storage.write_partition(
                {"data": frame}, lake, spec.name, "monitor", day.isoformat()
            ).uri
        yield spec, lake, days


def _check(spec, lake, uri, day, mode, *, force=False):
    changed = spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"report": mode})})
    result = monitoring.check(changed, uri, lake, day.isoformat(), report=force)
    folder = storage.read_manifest(result["verdicts_uri"].rsplit("/", 1)[0])
    return result, {f.name for f in folder.files}


@pytest.mark.parametrize(
    ("mode", "force", "stable_files", "drifted_files"),
    [
        ("drifted", False, {"drift.json"}, {"drift.json", "report.html", "report.json"}),
        ("never", False, {"drift.json"}, {"drift.json"}),
        (
            "never",
            True,
            {"drift.json", "report.html", "report.json"},
            {"drift.json", "report.html", "report.json"},
        ),
    ],
)
def test_the_report_is_built_as_the_mode_says_and_the_verdicts_always(
    champion, mode, force, stable_files, drifted_files
):
    spec, lake, days = champion
    stable, files = _check(spec, lake, days[STABLE], STABLE, mode, force=force)
    assert files == stable_files and stable["drift_share"] < spec.monitoring.drift_share
    assert (stable["report_uri"] is not None) == ("report.html" in stable_files)
    drifted, files = _check(spec, lake, days[DRIFTED], DRIFTED, mode, force=force)
    assert files == drifted_files and drifted["drift_share"] >= spec.monitoring.drift_share
    assert (drifted["report_uri"] is not None) == ("report.html" in drifted_files)


def test_the_report_runs_the_engines_methods_and_thresholds_and_agrees(champion):
    spec, lake, days = champion
    result, files = _check(spec, lake, days[DRIFTED], DRIFTED, "always")
    assert files == {"drift.json", "report.html", "report.json"}
    verdicts = json.loads(storage.read_file(result["verdicts_uri"]))
    snapshot = json.loads(storage.read_file(result["report_uri"].replace("report.html", "report.json")))
    ran = drift_report.report_drift_tests(snapshot)
    engine = {c["column"]: c for c in verdicts["columns"]}
    assert set(ran) == set(engine) and len(engine) == 30
    for column, test in ran.items():
        assert test["method"] == drift.EVIDENTLY_NAMES[engine[column]["method"]], column
        assert test["threshold"] == engine[column]["threshold"], column
        # same samples, same test: Evidently's p-value is the engine's (KS here)
        assert test["value"] == pytest.approx(engine[column]["p_value"], rel=1e-6, abs=1e-12), column
    assert sorted(datasets.DRIFT_COLUMNS["breast_cancer"]) == sorted(verdicts["drifted_columns"])
