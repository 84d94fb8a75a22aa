"""The data contract: learned from the champion's training rows, checked on every new partition."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_core import lifecycle, scoring
from mlops_core.base import settings
from mlops_core.data import contract, storage, validation
from mlops_core.model import training
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = datasets.load_example("breast_cancer")
    data["site"] = np.where(data.index % 2 == 0, "north", "south")
    return data


@pytest.fixture
def spec():
    return example_spec(expectations=[])


@pytest.fixture
def learned(frame, spec):
    return contract.learn(frame, spec)


def _rules(found, fatal=None):
    return {(v.column, v.rule) for v in found if fatal is None or v.fatal is fatal}


def test_learn_records_kinds_dtypes_null_shares_ranges_and_categories(frame, learned):
    assert json.loads(json.dumps(learned)) == learned
    assert learned["rows"] == len(frame) and learned["all_columns"] == list(frame.columns)
    radius = learned["columns"]["mean_radius"]
    assert radius["kind"] == "numeric" and radius["dtype"] == "float64" and radius["null_share"] == 0.0
    assert radius["min"] == frame["mean_radius"].min() and radius["max"] == frame["mean_radius"].max()
    assert learned["columns"]["site"]["categories"] == ["north", "south"]
    assert learned["columns"]["diagnosis"] == {
        **learned["columns"]["diagnosis"],
        "target": True,
        "categories": ["benign", "malignant"],
    }
    # ids, dates and the partition column are not features: only in the column set
    assert "record_id" not in learned["columns"] and "event_date" not in learned["columns"]


def test_the_training_rows_themselves_hold(frame, spec, learned):
    for stage in ("validation", "batch_validation", "monitor_validation"):
        assert contract.check(learned, frame, spec, with_target=True, stage=stage) == []


def test_a_missing_feature_column_is_fatal_and_the_target_only_counts_with_target(frame, spec, learned):
    found = contract.check(
        learned, frame.drop(columns=["mean_texture"]), spec, with_target=True, stage="validation"
    )
    assert _rules(found, fatal=True) == {("mean_texture", "missing")}
    assert "contract: column 'mean_texture' is missing" in found[0].describe()
    unlabelled = frame.drop(columns=["diagnosis"])
    assert contract.check(learned, unlabelled, spec, with_target=False, stage="batch_validation") == []
    found = contract.check(learned, unlabelled, spec, with_target=True, stage="validation")
    assert _rules(found, fatal=True) == {("diagnosis", "missing")}


def test_extra_columns_are_reported_and_refused_only_when_asked(frame, learned):
    wider = frame.assign(surprise=1.0)
    allowed = contract.check(learned, wider, example_spec(), with_target=True, stage="validation")
    assert _rules(allowed, fatal=False) == {("surprise", "extra")} and _rules(allowed, fatal=True) == set()
    strict = example_spec(contract={"extra_columns": "refuse"})
    refused = contract.check(learned, wider, strict, with_target=True, stage="validation")
    assert _rules(refused, fatal=True) == {("surprise", "extra")}
    assert "contract.extra_columns: allow" in refused[0].describe()


def test_a_numeric_column_arriving_as_text_fails_with_its_dtype(frame, spec, learned):
    bad = frame.copy()
    bad["mean_area"] = bad["mean_area"].astype(object)
    bad.loc[:4, "mean_area"] = "n/a"
    found = contract.check(learned, bad, spec, with_target=True, stage="monitor_validation")
    assert _rules(found) == {("mean_area", "dtype")} and found[0].fatal
    (v,) = found
    assert (
        v.expected == "numeric (float64)" and v.observed.startswith("text (object)") and "'n/a'" in v.observed
    )
    # the same text in a stage that normally tolerates shifts is still fatal
    assert "contract: column 'mean_area' changed type: expected numeric (float64)" in v.describe()


def test_a_features_null_share_beyond_the_margin_warns_and_target_nulls_are_fatal(frame, spec, learned):
    some = frame.copy()
    some.loc[: int(len(frame) * 0.04), "worst_area"] = np.nan  # ~4%: within the 5% margin
    assert contract.check(learned, some, spec, with_target=True, stage="validation") == []
    many = frame.copy()
    many.loc[: int(len(frame) * 0.2), "worst_area"] = np.nan
    found = contract.check(learned, many, spec, with_target=True, stage="validation")
    assert _rules(found, fatal=False) == {("worst_area", "null_share")} and found[0].kind == "distribution"
    assert (
        found[0].expected == "at most 5.0% nulls (trained with 0.0%)" and found[0].observed == "20.0% nulls"
    )
    all_null = frame.assign(worst_area=None)  # object dtype, but no type to compare: nulls only
    # a column that lost every value is not a shift: it is structural, like a missing column
    found = contract.check(learned, all_null, spec, with_target=True, stage="monitor_validation")
    assert _rules(found, fatal=True) == {("worst_area", "empty")} and "has no values" in found[0].describe()
    # the target's validity must hold for any data: a row without a label is fatal where labels count
    unlabelled = frame.astype({"diagnosis": object})
    unlabelled.loc[:2, "diagnosis"] = None
    found = contract.check(learned, unlabelled, spec, with_target=True, stage="validation")
    assert _rules(found, fatal=True) == {("diagnosis", "target_nulls")} and found[0].kind == "structural"
    assert "3 row(s) without one" in found[0].describe()


@pytest.mark.parametrize("stage", ["validation", "batch_validation", "monitor_validation"])
def test_values_outside_the_widened_range_warn_in_every_stage(frame, spec, learned, stage):
    lo, hi = contract.widened_range(learned["columns"]["mean_radius"], spec.contract.range_margin)
    assert lo < frame["mean_radius"].min() and hi > frame["mean_radius"].max()
    shifted = frame.copy()
    shifted.loc[:39, "mean_radius"] = hi + 1  # 40 / 569 = 7.0% of rows
    found = contract.check(learned, shifted, spec, with_target=True, stage=stage)
    assert _rules(found, fatal=False) == {("mean_radius", "out_of_range")} and found[0].kind == "distribution"
    msg = found[0].describe()
    assert msg.startswith(
        "contract: column 'mean_radius' has values outside its range: expected at most 1.0%"
    )
    assert (
        "observed 7.0% of rows outside" in msg and "relax contract.range_margin / out_of_range_share" in msg
    )
    # a few stragglers are within the allowance
    few = frame.copy()
    few.loc[:4, "mean_radius"] = hi + 1
    assert contract.check(learned, few, spec, with_target=True, stage="validation") == []
    loose = example_spec(contract={"out_of_range_share": 0.1})
    assert contract.check(learned, shifted, loose, with_target=True, stage="validation") == []


def test_unseen_categories_beyond_the_allowance_warn_in_every_stage(frame, spec, learned):
    new = frame.copy()
    new.loc[:29, "site"] = "<b>east</b>"
    found = contract.check(learned, new, spec, with_target=True, stage="batch_validation")
    assert _rules(found, fatal=False) == {("site", "new_categories")}
    assert "'<b>east</b>'" in found[0].observed and "outside the 2 trained categories" in found[0].expected
    monitored = contract.check(learned, new, spec, with_target=True, stage="monitor_validation")
    assert _rules(monitored, fatal=False) == {("site", "new_categories")}
    one = frame.copy()
    one.loc[:2, "site"] = "east"  # 3 rows: 0.5% < 1%
    assert contract.check(learned, one, spec, with_target=True, stage="validation") == []
    # a new label in the target is a new category too, but only checked with the target
    labels = frame.copy()
    labels.loc[:29, "diagnosis"] = "unknown"
    assert _rules(
        contract.check(learned, labels, spec, with_target=True, stage="validation"), fatal=False
    ) == {("diagnosis", "new_categories")}
    assert contract.check(learned, labels, spec, with_target=False, stage="batch_validation") == []


def test_huge_category_sets_record_only_their_count(frame, spec):
    wide = frame.assign(code=[f"c{i}" for i in range(len(frame))])
    spec = example_spec(expectations=[], features={"exclude": []})
    big = pd.concat([wide] * 2, ignore_index=True)
    big["code"] = [f"c{i}" for i in range(len(big))]
    learned = contract.learn(big, spec)
    assert learned["columns"]["code"] == {
        **learned["columns"]["code"],
        "n_categories": len(big),
        "categories": None,
    }
    fresh = big.assign(code=[f"new{i}" for i in range(len(big))])
    assert contract.check(learned, fresh, spec, with_target=True, stage="validation") == []


def test_integer_codes_that_gain_nulls_keep_their_categories(frame):
    spec = example_spec(expectations=[], features={"categorical": ["grade"]})
    coded = frame.assign(grade=frame.index % 3)
    learned = contract.learn(coded, spec)
    assert learned["columns"]["grade"]["categories"] == ["0", "1", "2"]
    with_nulls = coded.astype({"grade": float})
    with_nulls.loc[:3, "grade"] = np.nan  # ints turn to floats: 1.0 is still category "1"
    assert contract.check(learned, with_nulls, spec, with_target=True, stage="validation") == []


# --- end to end: a champion's contract guards validate with zero user expectations ---


@pytest.fixture
def raw_uri(landing, spec):
    return lifecycle.ingest(spec, DS, settings.lake_root())["uri"]


def _champion(spec, raw_uri):
    trained = training.train(spec, raw_uri, settings.lake_root(), DS, {"airflow.run_id": "dag/c"}).to_dict()
    evaluated = lifecycle.evaluate(spec, trained, settings.lake_root(), DS)
    decision = lifecycle.gate(
        spec, evaluated, trained["run_id"], force=True, forced_by="test", force_reason="unit"
    )
    version = lifecycle.register(spec, trained, decision.to_dict(), "dag/c", {})["version"]
    registry.promote(spec.name, version)
    return trained


def _partition(spec, frame, stage="raw"):
    return storage.write_partition({"data": frame}, settings.lake_root(), spec.name, stage, DS).uri


def test_validate_checks_the_champions_contract_with_zero_expectations(spec, raw_uri):
    assert spec.expectations == []
    # no champion yet: nothing to check against, validation passes on the implicit suite
    first = validation.validate_partition(spec, raw_uri, settings.lake_root(), DS)
    assert first.success and first.contract == []
    trained = _champion(spec, raw_uri)
    recorded = registry.client().download_artifacts(trained["run_id"], "contract.json")
    assert json.loads(open(recorded).read())["columns"]["mean_radius"]["kind"] == "numeric"

    good = validation.validate_partition(spec, raw_uri, settings.lake_root(), DS)
    assert good.success and good.contract == []

    bad = storage.read_frame(raw_uri)
    bad["worst_area"] = np.nan
    bad["mean_area"] = bad["mean_area"].astype(str)  # as a CSV with 'n/a' cells arrives
    bad.loc[:9, "mean_area"] = "n/a"
    bad["mean_texture"] = ["<script>alert(1)</script>"] * 3 + bad["mean_texture"].astype(str).tolist()[3:]
    with pytest.raises(validation.DataValidationFailed) as info:
        validation.validate_partition(spec, _partition(spec, bad), settings.lake_root(), DS)
    msg = str(info.value)
    assert (
        "FAILED contract: column 'worst_area' has no values: expected values (trained with 0.0% nulls)" in msg
    )
    assert (
        "contract: column 'mean_area' changed type: expected numeric (float64), observed text (object)" in msg
    )
    assert "'n/a'" in msg
    report = info.value.report
    assert report.failed == [] and {v.column for v in report.contract if v.fatal} == {
        "worst_area",
        "mean_area",
        "mean_texture",
    }
    saved = json.loads(storage.read_file(report.json_uri or ""))
    assert {v["column"] for v in saved["contract"]["violations"]} == {
        "worst_area",
        "mean_area",
        "mean_texture",
    }
    assert "champion breast_cancer v" in saved["contract"]["note"]
    page = storage.read_file(report.html_uri or "").decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Data contract" in page and "worst_area" in page and ': <span class="failed">failed</span>' in page


def test_monitoring_reports_a_shift_without_failing(spec, raw_uri):
    _champion(spec, raw_uri)
    shifted = storage.read_frame(raw_uri)
    shifted["mean_radius"] = shifted["mean_radius"] * 10
    uri = _partition(spec, shifted)
    report = validation.validate_partition(
        spec, uri, settings.lake_root(), DS, with_target=False, stage="monitor_validation"
    )
    assert report.success and _rules(report.contract, fatal=False) == {("mean_radius", "out_of_range")}
    assert "WARNING contract: column 'mean_radius'" in report.describe()
    # batch scoring behaves as monitoring: the shift is reported, the batch is scored
    batch = validation.validate_partition(
        spec, uri, settings.lake_root(), DS, with_target=False, stage="batch_validation"
    )
    assert batch.success and _rules(batch.contract, fatal=False) == {("mean_radius", "out_of_range")}
    # so is a retrain: the new window's contract is learned afresh, the gate judges the model
    retrain = validation.validate_partition(spec, uri, settings.lake_root(), DS, stage="validation")
    assert retrain.success and _rules(retrain.contract, fatal=False) == {("mean_radius", "out_of_range")}
    off = example_spec(expectations=[], contract={"enabled": False})
    assert validation.validate_partition(off, uri, settings.lake_root(), DS, stage="batch_validation").success


def test_a_champion_without_a_contract_is_skipped_and_registry_errors_propagate(spec, raw_uri, monkeypatch):
    trained = _champion(spec, raw_uri)
    real = registry.client().list_artifacts
    monkeypatch.setattr(
        type(registry.client()),
        "list_artifacts",
        lambda self, run_id, path=None: [a for a in real(run_id, path) if a.path != "contract.json"],
    )
    bad = storage.read_frame(raw_uri).drop(columns=["mean_texture"])
    report = validation.validate_partition(spec, _partition(spec, bad), settings.lake_root(), DS)
    assert report.success and report.contract == []
    saved = json.loads(storage.read_file(report.json_uri or ""))
    assert f"(run {trained['run_id']}) has no contract.json" in saved["contract"]["note"]

    def down(name, alias):
        raise registry.RegistryUnavailable("MLflow registry failed: database is locked")

    monkeypatch.setattr(registry, "alias_version", down)
    with pytest.raises(registry.RegistryUnavailable, match="database is locked"):
        validation.validate_partition(spec, raw_uri, settings.lake_root(), DS)


def test_unseen_flags_rows_per_column_and_is_unknown_without_a_contract(frame, spec, learned):
    new = frame.head(10).copy()
    new.loc[:2, "site"] = "east"
    new.loc[5, "site"] = None  # a null is not a new category
    flags, per_column = contract.unseen(learned, new)
    assert flags.tolist() == [True] * 3 + [False] * 7 and per_column == {"site": 3}
    flags, per_column = contract.unseen(None, new)
    assert flags.isna().all() and per_column == {}


def test_diff_states_what_changed_between_two_contracts(frame, spec, learned):
    later = frame.copy()
    later.loc[:9, "site"] = "east"
    later = later[later["site"] != "south"]
    later["mean_radius"] = later["mean_radius"] * 2
    changes = contract.diff(learned, contract.learn(later, spec))
    by = {(c["column"], c["change"]): c for c in changes}
    assert by[("site", "new_categories")]["new"] == ["east"]
    assert by[("site", "vanished_categories")]["old"] == ["south"]
    assert ("mean_radius", "range") in by and "range [" in by[("mean_radius", "range")]["text"]
    assert contract.diff(learned, learned) == [] and contract.diff(None, learned) == []


# --- unseen categories are scored and flagged; a retrain on changed categories reaches the gate ---


def _with_site(raw_uri, sites):
    frame = storage.read_frame(raw_uri)
    frame["site"] = [sites[i % len(sites)] for i in range(len(frame))]
    return frame


def test_scoring_scores_unseen_categories_flags_them_and_the_retrain_reaches_the_gate(raw_uri, caplog):
    spec = example_spec(expectations=[], features={"categorical": ["site"]})
    old = _partition(spec, _with_site(raw_uri, ["north", "south"]))
    _champion(spec, old)
    changed = _with_site(raw_uri, ["north", "south", "east", "west"])  # half the rows: new categories
    new = _partition(spec, changed)

    # batch scoring and monitoring both validate with a warning and score every row
    for stage in ("batch_validation", "monitor_validation"):
        report = validation.validate_partition(
            spec, new, settings.lake_root(), DS, with_target=False, stage=stage
        )
        assert report.success and _rules(report.contract) == {("site", "new_categories")}
    with caplog.at_level("WARNING", logger="mlops_core.lifecycle"):
        scored = scoring.batch_score(spec, new, settings.lake_root(), DS)
    out = storage.read_frame(scored["uri"])
    assert len(out) == len(changed) and out["prediction"].notna().all()
    expected = changed["site"].isin(["east", "west"]).tolist()
    assert out[contract.UNSEEN_COLUMN].tolist() == expected
    assert scored["unseen_rows"] == sum(expected) and scored["unseen_by_column"] == {"site": sum(expected)}
    assert scored["unseen_share"] == pytest.approx(sum(expected) / len(changed), abs=1e-6)
    assert "hold categories v1 never trained on (site: " in caplog.text
    monitored = scoring.batch_score(spec, new, settings.lake_root(), DS, stage="monitor_predictions")
    assert {k: monitored[k] for k in ("unseen_rows", "unseen_by_column")} == {
        k: scored[k] for k in ("unseen_rows", "unseen_by_column")
    }

    # the retrain on the changed window validates (warning only), trains, and the gate decides
    retrain = validation.validate_partition(spec, new, settings.lake_root(), DS)
    assert retrain.success and not any(v.fatal for v in retrain.contract)
    trained = training.train(spec, new, settings.lake_root(), DS, {"airflow.run_id": "dag/r"}).to_dict()
    evaluated = lifecycle.evaluate(spec, trained, settings.lake_root(), DS)
    changes = evaluated["contract_changes"]
    assert changes["against"] == "1"
    assert {(c["column"], c["change"]) for c in changes["changes"]} >= {("site", "new_categories")}
    (site,) = [c for c in changes["changes"] if c["change"] == "new_categories"]
    assert site["new"] == ["east", "west"] and "2 new categories" in site["text"]
    decision = lifecycle.gate(spec, evaluated, trained["run_id"])
    assert (
        decision.contract_changes == changes
        and "data contract (champion v1's contract" in decision.describe()
    )
    version = lifecycle.register(spec, trained, decision.to_dict(), "dag/r", {})["version"]
    from mlops_core.model import modelcard

    card = modelcard.build(spec, spec.name, version)
    assert ["site", "new_categories", site["text"]] in card.gate["contract_changes"]["rows"]
    assert "What changed in the data since champion v1" in card.markdown()


def test_a_one_class_partition_is_refused_at_validate_naming_its_source(spec, landing):
    """#25 trap 7: single-class data was only caught at train, with no file named. Validate refuses
    it, first model included (no champion's contract needed), naming the source file."""
    from mlops_dev import datasets

    frame = datasets.load_example("breast_cancer")
    only = frame[frame[spec.target] == frame[spec.target].iloc[0]]
    source = datasets.materialize("breast_cancer", landing, frame=only)
    raw = lifecycle.ingest(spec, DS, settings.lake_root())["uri"]
    with pytest.raises(validation.DataValidationFailed) as info:
        validation.validate_partition(spec, raw, settings.lake_root(), DS)
    msg = str(info.value)
    assert f"contract: column '{spec.target}' (the target) has one class: expected at least 2 classes" in msg
    assert f"read from {source}" in msg
    assert "a classifier needs at least two classes" in msg
