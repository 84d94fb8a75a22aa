"""Fairness and slices in the gate (``evaluation.slices``) on the real libraries (fairlearn, sklearn, MLflow).

The first half builds predictions by hand, so each slice's metric is known exactly and the reason
texts can be asserted whole; the seeded bootstrap makes the intervals in them reproducible. The
second half runs ingest -> train -> evaluate -> gate in-process on a table landed here, where the
model is worse for one group by construction, and reads what the MLflow run records.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlops_core.model import slice_intervals, slice_report, slices
from mlops_core.model.evaluation import GateDecision, Scored, decide
from mlops_core.spec.catalog import metrics_for
from tests.helpers import REPO, example_spec

pytestmark = pytest.mark.unit

GOOD = {"roc_auc": 0.98, "recall": 0.9}  # the example's holdout floors pass: only slices can reject
SLICES = {"columns": ["sex"], "metrics": ["recall"], "floors": {"recall": 0.7}, "max_gap": {"recall": 0.1}}


def _spec(example: str = "breast_cancer", **sl):
    return example_spec(example, evaluation={"slices": {**SLICES, **sl}})


def _group(name, positives, caught, negatives, flagged):
    """Rows of one group: ``caught`` of ``positives`` predicted positive, ``flagged`` of ``negatives``."""
    y = ["malignant"] * positives + ["benign"] * negatives
    pred = ["malignant"] * caught + ["benign"] * (positives - caught)
    pred += ["malignant"] * flagged + ["benign"] * (negatives - flagged)
    return pd.DataFrame({"sex": name, "y": y, "pred": pred})


def _table(*groups, seed=0):
    frame = pd.concat(groups, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    y, pred = frame.pop("y").to_numpy(), frame.pop("pred").to_numpy()
    proba = np.where(pred == "malignant", 0.8, 0.2) + np.random.default_rng(seed).uniform(-0.1, 0.1, len(y))
    return frame, y, Scored(pred=pred, proba=proba, classes=["benign", "malignant"])


def _report(spec, frame, y, scored, **kw):
    return slices.compute(spec, frame, y, scored, "malignant", **kw)


UNFAIR = (_group("M", 100, 79, 100, 10), _group("F", 100, 61, 20, 2))
FAIR = (_group("M", 100, 80, 100, 10), _group("F", 100, 78, 20, 2))


# --- floors, gaps, small slices ----------------------------------------------------------------


def test_a_worse_group_fails_its_floor_and_the_gap_with_exact_reasons():
    spec = _spec()
    report = _report(spec, *_table(*UNFAIR))
    assert report.violations == [
        "slice sex=F: recall 0.61 < floor 0.70 (95% wilson interval [0.51, 0.70] below it, 120 rows, 100 positive)",
        "slices of sex: recall gap 0.18 between sex=M (0.79) and sex=F (0.61) > max_gap 0.10",
    ]
    d = decide(spec, GOOD, None, None, slices=report.to_dict())
    assert not d.promote and d.outcome == "reject"
    assert report.violations[0] in d.reasons and report.violations[1] in d.reasons
    # floors and margin alone would promote: it is the slices that reject
    assert any("no champion yet" in r for r in d.reasons)
    assert all("FAILS" not in r for r in d.reasons)


def test_a_fair_table_promotes_and_says_why():
    spec = _spec()
    report = _report(spec, *_table(*FAIR))
    assert report.violations == []
    d = decide(spec, GOOD, None, None, slices=report.to_dict())
    assert d.promote
    assert "slices of sex: 2 of 2 slices judged, every slice floor holds" in d.reasons
    assert "slices of sex: recall gap 0.02 between sex=M (0.80) and sex=F (0.78) <= max_gap 0.10" in d.reasons


def test_the_report_shape_the_model_card_and_approval_page_read():
    spec = _spec()
    d = decide(spec, GOOD, None, None, slices=_report(spec, *_table(*UNFAIR)).to_dict())
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))  # JSON as is, no NaN
    s = out["slices"]
    assert list(s["columns"]) == ["sex"] and s["violations"] == [
        r for r in d.reasons if r.startswith("slice")
    ]
    by_name = {x["slice"]: x for x in s["columns"]["sex"]}
    assert [x["slice"] for x in s["columns"]["sex"]] == ["sex=F", "sex=M"]
    f = by_name["sex=F"]
    assert f["rows"] == 120 and f["judged"] is True and f["note"] is None
    assert f["metrics"]["recall"]["value"] == 0.61
    assert f["metrics"]["recall"]["low"] < 0.61 < f["metrics"]["recall"]["high"]
    assert s["gaps"]["sex"]["recall"] == {
        "best": "sex=M",
        "best_value": 0.79,
        "worst": "sex=F",
        "worst_value": 0.61,
        "gap": 0.18,
        "judged_slices": 2,
        "max_gap": 0.1,
        "champion_gap": None,
    }
    assert GateDecision.from_dict(d.to_dict()) == d
    text = d.describe()
    assert "slices of sex (min_rows 30, min_positives 10):" in text
    assert "sex=F: 120 rows, 100 positive; recall 0.61 [0.51, 0.70]" in text


def test_a_small_slice_is_reported_not_silently_passed_and_rejects_with_small_reject():
    tiny = _group("X", 8, 2, 4, 0)  # recall 0.25, but 12 rows: not judged
    table = _table(*FAIR, tiny)
    report = _report(_spec(), *table)
    note = "slice sex=X: 12 rows < min_rows 30, not judged"
    assert note in report.notes and report.violations == []
    x = next(s for s in report.columns["sex"] if s.slice == "sex=X")
    assert (x.rows, x.judged, x.note) == (12, False, "too few rows")
    assert x.metrics["recall"]["value"] == 0.25  # still computed and shown
    assert report.gaps["sex"]["recall"].judged_slices == 2  # the gap ignores it
    assert decide(_spec(), GOOD, None, None, slices=report.to_dict()).promote

    strict = _spec(small="reject")
    d = decide(strict, GOOD, None, None, slices=_report(strict, *table).to_dict())
    assert not d.promote and f"{note} (small: reject)" in d.reasons


def test_force_promote_keeps_the_slice_reasons():
    spec = _spec()
    report = _report(spec, *_table(*UNFAIR)).to_dict()
    d = decide(spec, GOOD, None, None, slices=report, force=True, forced_by="alice", force_reason="audit ok")
    assert d.promote and d.forced and d.outcome == "forced"
    assert "slices of sex: recall gap 0.18 between sex=M (0.79) and sex=F (0.61) > max_gap 0.10" in d.reasons
    assert d.reasons[-1] == "FORCED by alice: audit ok (gate alone would reject)"
    assert d.slices is not None and len(d.slices["violations"]) == 2


def test_the_gate_judges_by_the_spec_not_by_the_reports_own_lists():
    spec = _spec()
    report = _report(spec, *_table(*UNFAIR)).to_dict()
    report["violations"], report["notes"] = [], []  # an XCom that claims all is well
    assert not decide(spec, GOOD, None, None, slices=report).promote
    # configured slices with no report at all fail closed
    d = decide(spec, GOOD, None, None)
    assert not d.promote and any("no slice report" in r for r in d.reasons)


def test_fairness_rates_selection_rate_floor_is_a_minimum_and_fpr_a_maximum():
    spec = _spec(
        metrics=["selection_rate", "false_positive_rate"],
        floors={"selection_rate": 0.5, "false_positive_rate": 0.25},
        max_gap={"selection_rate": 0.2},
    )
    # M: 90 of 200 selected, FPR 10/100; F: 40 of 120 selected, FPR 10/20 = 0.5
    report = _report(spec, *_table(_group("M", 100, 80, 100, 10), _group("F", 100, 30, 20, 10)))
    lines = report.violations
    # M: 0.45, but its Wilson interval [0.38, 0.52] reaches the floor: not confidently below it
    assert not any(v.startswith("slice sex=M: selection_rate") for v in lines)
    assert any(
        v.startswith(
            "slice sex=F: selection_rate 0.33 < floor 0.50 (95% wilson interval [0.26, 0.42] below it"
        )
        for v in lines
    )
    assert any(v.startswith("slice sex=F: false_positive_rate 0.50 > floor 0.25") for v in lines)
    assert not any(v.startswith("slice sex=M: false_positive_rate") for v in lines)
    # selection_rate has no better direction: parity is the gap between the highest and the lowest
    assert "slices of sex: selection_rate gap 0.12 between sex=M (0.45) and sex=F (0.33) <= max_gap 0.20" in (
        report.notes
    )


def test_an_undefined_rate_is_not_a_zero():
    spec = _spec(min_rows=5)
    negatives_only = _group("N", 0, 0, 40, 3)  # recall has no positive row to be computed on
    report = _report(spec, *_table(*FAIR, negatives_only))
    n = next(s for s in report.columns["sex"] if s.slice == "sex=N")
    assert n.metrics["recall"] == {"value": None, "low": None, "high": None}
    assert "slice sex=N: recall is undefined on its 40 rows (no positive rows), not judged" in (report.notes)
    assert report.violations == []


def test_wilson_intervals_are_wide_on_thin_evidence_and_match_the_textbook():
    assert slice_intervals.wilson(0, 0, 0.95) is None
    low, high = slice_intervals.wilson(0, 1, 0.95)
    assert low == 0.0 and high == pytest.approx(0.7935, abs=1e-4)  # not [0, 0]
    low, high = slice_intervals.wilson(61, 100, 0.95)
    assert (low, high) == (pytest.approx(0.5121, abs=1e-4), pytest.approx(0.6998, abs=1e-4))
    assert slice_intervals.wilson(1, 1, 0.95)[1] == 1.0


def test_a_slice_with_few_positives_is_not_judged_on_recall_but_is_on_accuracy():
    spec = _spec(metrics=["recall", "accuracy"], floors={"recall": 0.7, "accuracy": 0.5}, max_gap={})
    rare = _group("R", 3, 0, 97, 1)  # 100 rows, 3 positives, none found: recall 0.00
    report = _report(spec, *_table(*FAIR, rare))
    r = next(x for x in report.columns["sex"] if x.slice == "sex=R")
    assert (r.rows, r.positives, r.judged) == (100, 3, True)
    assert r.metrics["recall"]["value"] == 0.0 and r.metrics["recall"]["high"] > 0.5  # wide, not [0, 0]
    assert "slice sex=R: 3 positive rows < min_positives 10, recall not judged" in report.notes
    assert report.violations == []
    assert report.interval_methods == {"recall": "wilson", "accuracy": "wilson"}
    from mlops_core.model.modelcard_render import _slices_section

    card = _slices_section(report.to_dict())
    assert ("interval", "0.95 Wilson score (recall, accuracy)") in card.fields
    assert card.tables[0].header[:3] == ["slice", "rows", "positives"]
    # the same slice with the rule off: its interval is still judged, and is confidently below
    strict = _report(_spec(min_positives=0, max_gap={}), *_table(*FAIR, _group("R", 30, 3, 70, 1)))
    assert any(v.startswith("slice sex=R: recall 0.10 < floor 0.70 (95% wilson") for v in strict.violations)
    # 0 of 1 positive found is no evidence: [0.00, 0.79] reaches the floor, nothing fails
    one = _report(_spec(min_positives=0, max_gap={}), *_table(*FAIR, _group("R", 1, 0, 99, 0)))
    assert one.violations == []
    # small: reject turns too few positives into a rejection, like too few rows
    rejecting = _report(_spec(small="reject", max_gap={}), *_table(*FAIR, rare))
    assert "slice sex=R: 3 positive rows < min_positives 10, recall not judged (small: reject)" in (
        rejecting.violations
    )


def test_when_every_slice_ties_the_gap_never_compares_a_slice_with_itself():
    spec = _spec(min_rows=5)
    same = (_group("A", 10, 8, 10, 0), _group("B", 10, 8, 10, 0), _group("C", 10, 8, 10, 0))
    report = _report(spec, *_table(*same))
    g = report.gaps["sex"]["recall"]
    assert g.gap == 0 and g.best != g.worst
    assert "slices of sex: recall gap 0 (all 3 judged slices at 0.80) <= max_gap 0.10" in report.notes
    assert not any("sex=A (0.80) and sex=A" in n for n in report.notes)


def test_the_gate_log_for_fifty_slices_is_a_summary_and_the_failing_ones():
    spec = _spec(max_gap={}, min_rows=20, min_positives=5)
    groups = [_group(f"s{i:02d}", 20, 16, 20, 1) for i in range(44)]
    groups += [_group("bad", 40, 4, 20, 0)]  # confidently below the floor
    groups += [_group(f"tiny{i}", 2, 1, 3, 0) for i in range(5)]  # 5 rows: not judged
    report = _report(spec, *_table(*groups))
    assert len(report.columns["sex"]) == 50
    d = decide(spec, GOOD, None, None, slices=report.to_dict())
    assert not d.promote
    text = d.describe().splitlines()
    assert len(text) < 15, "\n".join(text)
    assert any("50 slices, 45 judged, 1 failing" in line for line in text)
    assert any(line.strip().startswith("sex=bad: 60 rows, 40 positive; recall 0.10") for line in text)
    names = ", ".join(f"sex=tiny{i}" for i in range(5))
    assert f"slices of sex: 5 not judged (5 below min_rows): {names}" in d.reasons


def test_a_slice_column_listed_as_categorical_stays_a_feature():
    from mlops_core.model.training import feature_columns

    frame = pd.DataFrame({"x": [1.0, 2.0], "sex": ["F", "M"], "state": ["AZ", "CA"], "diagnosis": ["a", "b"]})
    spec = example_spec(
        features={"id_columns": [], "categorical": ["state"]},
        evaluation={"slices": {**SLICES, "columns": ["sex", "state"]}},
    )
    numeric, categorical = feature_columns(spec, frame)
    assert (numeric, categorical) == (["x"], ["state"])  # sex: slice only; state: also a feature


def test_the_champions_slices_stand_beside_the_challengers():
    spec = _spec()
    frame, y, scored = _table(*UNFAIR)
    champion = Scored(
        pred=y.copy(), proba=(y == "malignant").astype(float), classes=scored.classes
    )  # perfect
    report = _report(spec, frame, y, scored, champion=champion, champion_version="3")
    f = next(s for s in report.columns["sex"] if s.slice == "sex=F")
    assert f.champion == {"recall": 1.0} and report.champion_overall == {"recall": 1.0}
    assert report.gaps["sex"]["recall"].champion_gap == 0.0
    assert report.champion_version == "3"


# --- slicing -------------------------------------------------------------------------------------


def test_numeric_bins_with_out_of_range_and_missing_slices():
    spec = _spec(columns=[{"column": "age", "bins": [0, 18, 65, 120]}], min_rows=1)
    age = [-5.0, 0.0, 17.9, 18.0, 64.0, 119.0, 120.0, 130.0, np.nan, np.nan]
    labels, order = slices.slice_labels(pd.DataFrame({"age": age}), spec.evaluation.slices.columns[0])
    assert list(labels) == [
        "age=(-inf, 0)",
        "age=[0, 18)",
        "age=[0, 18)",
        "age=[18, 65)",
        "age=[18, 65)",
        "age=[65, 120)",
        "age=[120, inf)",
        "age=[120, inf)",
        "age=<missing>",
        "age=<missing>",
    ]
    assert order == [
        "age=(-inf, 0)",
        "age=[0, 18)",
        "age=[18, 65)",
        "age=[65, 120)",
        "age=[120, inf)",
        "age=<missing>",
    ]
    # a bin no holdout row falls in is listed with 0 rows; out-of-range slices only when they have rows
    frame = pd.DataFrame({"age": [5.0] * 40 + [70.0] * 40})
    y = np.array(["malignant", "benign"] * 40)
    report = _report(spec, frame, y, Scored(pred=y.copy(), proba=(y == "malignant") * 1.0))
    rows = {s.slice: s.rows for s in report.columns["age"]}
    assert rows == {"age=[0, 18)": 40, "age=[18, 65)": 0, "age=[65, 120)": 40}
    assert "slice age=[18, 65): 0 rows < min_rows 1, not judged" in report.notes


def test_categorical_slices_nulls_and_integer_values():
    col = _spec(columns=["grade"]).evaluation.slices.columns[0]
    labels, order = slices.slice_labels(pd.DataFrame({"grade": [3, 1, None, 3, 2]}), col)
    assert order == ["grade=1", "grade=2", "grade=3", "grade=<missing>"] and labels[2] == "grade=<missing>"


@pytest.mark.parametrize(
    ("frame", "column", "match"),
    [
        (
            pd.DataFrame({"gender": ["F", "M"]}),
            "sex",
            r"evaluation.slices names column\(s\) \['sex'\] that the holdout",
        ),
        (pd.DataFrame({"sex": [str(i) for i in range(60)]}), "sex", "60 distinct values .* give it bins"),
        (
            pd.DataFrame({"sex": ["F", "M"]}),
            {"column": "sex", "bins": [0, 1]},
            "has bins, but its values are not numbers",
        ),
    ],
)
def test_a_column_the_holdout_cannot_be_sliced_by_is_a_clear_error(frame, column, match):
    spec = _spec(columns=[column])
    y = np.array(["malignant", "benign"] * (len(frame) // 2))
    with pytest.raises(slices.SliceDataError, match=match):
        _report(spec, frame, y, Scored(pred=y.copy(), proba=(y == "malignant") * 1.0))


def test_missing_column_message_names_the_fix():
    with pytest.raises(slices.SliceDataError) as info:
        slices.check_columns(_spec(), ["sexe", "age"], "file:///lake/holdout")
    msg = str(info.value)
    assert "['sex']" in msg and "file:///lake/holdout" in msg and "'sex' -> 'sexe'?" in msg
    assert (
        "Add the column(s) to the source data, or fix or remove them under evaluation.slices.columns" in msg
    )


def test_fairness_rates_are_binary_only_in_the_spec():
    from mlops_core.spec import SpecError

    with pytest.raises(SpecError, match="apply to binary problems only"):
        example_spec("diabetes", evaluation={"slices": {"columns": ["sex"], "metrics": ["selection_rate"]}})


# --- regression --------------------------------------------------------------------------------


def test_regression_slices_rmse_per_slice_with_its_floor_as_a_maximum():
    spec = example_spec(
        "diabetes",
        evaluation={
            "slices": {
                "columns": ["sex"],
                "metrics": ["rmse", "mae"],
                "floors": {"rmse": 20.0},
                "max_gap": {"rmse": 5.0},
            }
        },
    )
    rng = np.random.default_rng(0)
    sex = np.array(["group_1"] * 60 + ["group_2"] * 40)
    y = rng.uniform(50, 300, 100)
    err = np.where(sex == "group_1", 10.0, 30.0) * rng.choice([-1.0, 1.0], 100)  # |error| fixed per group
    report = slices.compute(spec, pd.DataFrame({"sex": sex}), y, Scored(pred=y + err))
    g1, g2 = report.columns["sex"]
    assert g1.metrics["rmse"] == {"value": 10.0, "low": 10.0, "high": 10.0}
    assert g2.metrics["mae"]["value"] == 30.0
    assert report.violations == [
        "slice sex=group_2: rmse 30.00 > floor 20.00 (95% bootstrap interval [30.00, 30.00] above it, 40 rows)",
        "slices of sex: rmse gap 20.00 between sex=group_1 (10.00) and sex=group_2 (30.00) > max_gap 5.00",
    ]


# --- the vectorised bootstrap -------------------------------------------------------------------


def _scored(problem, n, rng):
    if problem in ("binary", "binary-sorted"):
        y = np.where(rng.random(n) < 0.3, "yes", "no")
        p = np.clip((y == "yes") * 0.4 + rng.random(n) * 0.6, 0, 1)
        if problem == "binary":
            p = p.round(1)  # ties in the scores
        else:  # unique scores, rows already by descending score (what intervals() hands over)
            order = np.argsort(-p)
            y, p = y[order], p[order]
        return y, Scored(pred=np.where(p > 0.5, "yes", "no"), proba=p, classes=["no", "yes"]), "yes"
    if problem == "multiclass":
        y = rng.choice(["a", "b", "c"], n)
        pr = rng.dirichlet([1, 1, 1], n)
        return (
            y,
            Scored(pred=np.array(["a", "b", "c"])[pr.argmax(1)], proba=pr, classes=["a", "b", "c"]),
            None,
        )
    y = rng.normal(size=n) * 10
    return y, Scored(pred=y + rng.normal(size=n)), None


@pytest.mark.parametrize("layout", ["binary", "binary-sorted", "multiclass", "regression"])
@pytest.mark.parametrize("n", [3, 60])
def test_the_vectorised_resamples_equal_the_metrics_on_the_resampled_rows(layout, n):
    """Each resample's metric, computed from row multiplicities, is the metric of those rows."""
    import warnings

    rng = np.random.default_rng(n)
    y, s, pos = _scored(layout, n, rng)
    problem = layout.split("-")[0]
    names = metrics_for(problem) + (list(slice_report.FAIRNESS_DIRECTION) if problem == "binary" else [])
    rows = slice_intervals._Rows(problem, y, s, pos)
    matrix, index = rows.columns(names)
    w = next(slice_intervals._multiplicities(np.random.default_rng(1), n, 40))
    block = slice_intervals._Block(w, rows, matrix, index)
    for m in names:
        fast = slice_intervals._vector_metric(block, m)
        for k in range(len(w)):
            idx = np.repeat(np.arange(n), w[k].astype(int))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = slices.slice_metric(m, problem, y[idx], slice_intervals.subset(s, idx), pos)
            assert (math.isnan(want) and math.isnan(fast[k])) or fast[k] == pytest.approx(want, abs=1e-12), m


def test_the_bootstrap_is_seeded_and_capped_on_large_slices(monkeypatch):
    rng = np.random.default_rng(0)
    y, s, pos = _scored("binary", 2000, rng)
    args = (["recall", "roc_auc"], "binary", y, s, pos)
    kw = {"n_resamples": 1000, "confidence": 0.95}
    first, used = slice_intervals.intervals(*args, **kw, seed=[0, 0, 0])
    assert used == 1000 and first == slice_intervals.intervals(*args, **kw, seed=[0, 0, 0])[0]
    assert first != slice_intervals.intervals(*args, **kw, seed=[1, 0, 0])[0]
    monkeypatch.setattr(slice_intervals, "RESAMPLE_BUDGET", 2000 * 300)
    assert slice_intervals.intervals(*args, **kw, seed=0)[1] == 300
    monkeypatch.setattr(slice_intervals, "RESAMPLE_BUDGET", 2000 * 10)
    assert slice_intervals.intervals(*args, **kw, seed=0)[1] == slice_intervals.MIN_RESAMPLES


def test_mlflow_metric_names_are_sanitised_and_distinct():
    spec = _spec(columns=[{"column": "age", "bins": [0, 30, 50]}, "sex"], min_rows=1)
    frame = pd.DataFrame({"age": [10.0, 40.0, 60.0, np.nan] * 10, "sex": ["F", "F", "M", "M"] * 10})
    y = np.array(["malignant", "benign"] * 20)
    metrics = _report(spec, frame, y, Scored(pred=y.copy(), proba=(y == "malignant") * 1.0)).mlflow_metrics()
    assert metrics["slice.age_0_30.recall"] == 1.0 and metrics["slice.sex_F.rows"] == 20
    assert metrics["slice.age_30_50.rows"] == 10 and "slice.age_30_50.recall" not in metrics  # undefined
    assert {"slice.age_0_30.rows", "slice.age_50_inf.rows", "slice.age_missing.rows"} <= set(metrics)
    assert "slice_gap.sex.recall" in metrics
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+", k) and len(k) <= 250 for k in metrics)
    used: dict[str, str] = {}
    assert slice_report._key("a=[1, 2)", used) != slice_report._key(
        "a=(1, 2]", used
    )  # same characters, two keys


def test_without_slices_nothing_changes_and_fairlearn_is_not_imported():
    code = (
        "import sys\n"
        "from tests.helpers import example_spec\n"
        "from mlops_core.model.evaluation import decide\n"
        "d = decide(example_spec(), {'roc_auc': 0.98, 'recall': 0.9}, None, None)\n"
        "assert d.promote and d.slices is None and d.to_dict()['slices'] is None, d\n"
        "assert 'fairlearn' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- in-process lifecycle on a landed table ------------------------------------------------------

DS = "2026-01-31"
LIFECYCLE_SLICES = {
    "columns": ["sex", {"column": "age", "bins": [0, 30, 60, 120]}],
    "metrics": ["recall", "roc_auc", "selection_rate"],
    "floors": {"recall": 0.7},
    "max_gap": {"recall": 0.1},
    "min_rows": 20,
}


def _landed_table(rows=1200, seed=0):
    """Labels follow x1 + x2 for sex=M and run against it for sex=F: the model must do worse on F."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    sex = rng.choice(["F", "M"], rows, p=[0.3, 0.7])
    age = rng.uniform(18, 90, rows).round()
    age[rng.random(rows) < 0.05] = np.nan
    signal = 1 / (1 + np.exp(-3 * (x[:, 0] + x[:, 1])))
    p = np.where(sex == "F", 0.75 - 0.5 * signal, signal)
    return pd.DataFrame(
        {
            "record_id": [f"r-{i:05d}" for i in range(rows)],
            "event_date": [f"2026-01-{1 + i % 31:02d}" for i in range(rows)],
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "sex": sex,
            "age": age,
            "label": np.where(rng.random(rows) < p, "yes", "no"),
        }
    )


def _lifecycle_spec(**changes):
    return example_spec(
        name="slices_demo",
        source={"uri": "${MLOPS_LANDING}/slices_demo/slices_demo.csv"},
        target="label",
        positive_class="yes",
        expectations=[],
        model={"family": "linear", "params": {"C": 1.0}, "seed": 0},
        evaluation={
            "floors": {"roc_auc": 0.6},
            "bootstrap": {"n_resamples": 200},
            "slices": {**LIFECYCLE_SLICES, **changes},
        },
        monitoring={"enabled": False},
    )


def _artifact(run_id, name):
    import mlflow

    from mlops_core.runs import tracking

    tracking.configure()
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")


@pytest.fixture(scope="module")
def lifecycle_runs(tmp_path_factory: pytest.TempPathFactory):
    """Run 1 (no champion, forced through the slice rejection, deployed) and run 2 (against it)."""
    from mlops_core import lifecycle, rollout
    from mlops_core.base import settings
    from mlops_core.model import training
    from mlops_dev import datasets

    local = tmp_path_factory.mktemp("slices")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        spec = _lifecycle_spec()
        datasets.materialize("slices_demo", settings.landing_root(), frame=_landed_table())
        lake = settings.lake_root()
        raw = lifecycle.ingest(spec, DS, lake)["uri"]
        runs = []
        for key, force in (("dag/run-1", True), ("dag/run-2", False)):
            trained = training.train(spec, raw, lake, DS, {"airflow.run_id": key}).to_dict()
            evaluated = lifecycle.evaluate(spec, trained, lake, DS)
            decision = lifecycle.gate(
                spec, evaluated, trained["run_id"], force=force, forced_by="test", force_reason="first model"
            )
            runs.append((trained, evaluated, decision))
            if force:
                registered = lifecycle.register(spec, trained, decision.to_dict(), key, {})
                rollout.deploy(spec, str(registered["version"]))
        yield spec, lake, runs


def test_slice_only_columns_are_not_model_features(lifecycle_runs):
    from mlops_core.runs import run_artifacts

    spec, _, runs = lifecycle_runs
    trained = runs[0][0]
    assert sorted(trained["numeric"] + trained["categorical"]) == ["x1", "x2", "x3"]
    model = run_artifacts.load_trained(trained["model_uri"], trained["run_id"])
    assert list(model.named_steps["preprocess"].feature_names_in_) == ["x1", "x2", "x3"]
    features = _artifact(trained["run_id"], "features.json")
    assert "sex" not in json.dumps(features) and "age" not in json.dumps(features)


def test_evaluate_returns_the_slice_report_and_the_gate_rejects_on_it(lifecycle_runs):
    _, _, runs = lifecycle_runs
    _, evaluated, decision = runs[1]
    report = evaluated["slices"]
    assert json.loads(json.dumps(report, allow_nan=False)) == report and len(json.dumps(report)) < 20_000
    sex = {s["slice"]: s for s in report["columns"]["sex"]}
    assert set(sex) == {"sex=F", "sex=M"}
    assert sex["sex=F"]["metrics"]["recall"]["value"] < 0.7 <= sex["sex=M"]["metrics"]["recall"]["value"]
    age = [s["slice"] for s in report["columns"]["age"]]
    assert age == ["age=[0, 30)", "age=[30, 60)", "age=[60, 120)", "age=<missing>"]
    # the champion (run 1's model, the same data and seed) is scored on the same slices
    assert report["champion_version"] == "1"
    assert sex["sex=F"]["champion"]["recall"] == sex["sex=F"]["metrics"]["recall"]["value"]
    assert not decision.promote
    assert any(
        r.startswith("slice sex=F: recall 0.") and "< floor 0.70 (95% wilson interval [" in r
        for r in decision.reasons
    )
    assert any(r.startswith("slices of sex: recall gap ") and "> max_gap 0.10" in r for r in decision.reasons)


def test_the_mlflow_run_has_the_slice_metrics_and_slices_json(lifecycle_runs):
    from mlops_core.runs import registry

    _, _, runs = lifecycle_runs
    trained, evaluated, _ = runs[1]
    client = registry.client()
    metrics = client.get_run(trained["run_id"]).data.metrics
    f = next(s for s in evaluated["slices"]["columns"]["sex"] if s["slice"] == "sex=F")
    assert metrics["slice.sex_F.recall"] == pytest.approx(f["metrics"]["recall"]["value"])
    assert metrics["slice.sex_F.rows"] == f["rows"]
    assert {"slice.age_0_30.roc_auc", "slice.age_missing.selection_rate", "slice_gap.sex.recall"} <= set(
        metrics
    )
    saved = _artifact(trained["run_id"], "slices.json")
    assert saved == evaluated["slices"]


def test_gate_decision_json_carries_the_slices(lifecycle_runs):

    _, _, runs = lifecycle_runs
    for trained, _, decision in runs:
        saved = _artifact(trained["run_id"], "gate_decision.json")
        assert saved["slices"] == decision.to_dict()["slices"]
        assert saved["slices"]["violations"] and set(saved["slices"]["violations"]) <= set(saved["reasons"])
        first = saved["slices"]["columns"]["sex"][0]
        assert set(first) >= {"slice", "rows", "metrics", "judged"}
        assert set(first["metrics"]["recall"]) == {"value", "low", "high"}
    forced = runs[0][2]
    assert forced.outcome == "forced" and any(
        r.startswith("slices of sex: recall gap") for r in forced.reasons
    )


def test_a_slice_column_missing_from_the_holdout_fails_evaluate(lifecycle_runs):
    from mlops_core import lifecycle

    _, lake, runs = lifecycle_runs
    broken = _lifecycle_spec(columns=["gender"])
    with pytest.raises(slices.SliceDataError, match=r"\['gender'\] that the holdout rows \(file://"):
        lifecycle.evaluate(broken, runs[0][0], lake, DS)
