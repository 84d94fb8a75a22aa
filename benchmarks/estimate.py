"""Estimate benchmark: performance estimated before labels (CBPE, :mod:`mlops_core.monitor.estimate`)
against the realized performance once the labels arrive, on a seeded covariate shift.

The world: two features, x1 and x2, standard normal; the label is positive with probability
sigmoid(2 x1 + x2 - 0.5) on every day (the concept never changes). The champion scores
sigmoid(2.5 (2 x1 + x2 - 0.5)) (right ranking, overconfident: its raw scores are not calibrated),
and its decision threshold is 0.5. Training checks its holdout's calibration
(:func:`mlops_core.model.calibration.check`) and fits the isotonic calibrator that monitoring
applies. About ``rows`` rows a day (Poisson); from day ``stable_days`` the spread of x1 shrinks
linearly to ``end_scale`` by the last day, so more rows sit near the decision boundary and ROC AUC,
accuracy and f1 fall: a covariate shift, which the estimate is built for.

Each day is replayed through the engine: the estimate of monitored day D (no labels), the
realized performance of D - 3 (labels arrive 3 days later), and the decay policy twice, with
``feedback.decay.on: estimated`` and ``realized`` (roc_auc, ``max_drop`` 0.05 from the own
baseline of the first 7 days, 2 days in a row). Prints one line per prediction day, the mean
absolute error of the estimate per metric, and the day each policy first fires.

    .venv/bin/python benchmarks/estimate.py [--seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec

START = date(2026, 1, 1)
NAME = "estimate_auc"
STABLE_DAYS = 28
DELAY = 3
POSITIVE, NEGATIVE = "malignant", "benign"
METRICS = ("roc_auc", "accuracy", "f1")


def _logit(x1: Any, x2: Any) -> Any:
    return 2.0 * x1 + x2 - 0.5


def model_scores(x1: Any, x2: Any) -> Any:
    """The champion's raw P(positive): the right ranking, overconfident (not calibrated)."""
    import numpy as np

    return 1.0 / (1.0 + np.exp(-2.5 * _logit(x1, x2)))


def rows_of(rng: Any, n: int, scale: float = 1.0) -> pd.DataFrame:
    """``n`` rows: features (x1's spread ``scale``), the label drawn from the true probability, the score."""
    import numpy as np
    import pandas as pd

    x1, x2 = rng.normal(0.0, scale, n), rng.normal(0.0, 1.0, n)
    truth = 1.0 / (1.0 + np.exp(-_logit(x1, x2)))
    label = np.where(rng.uniform(size=n) < truth, POSITIVE, NEGATIVE)
    score = model_scores(x1, x2)
    return pd.DataFrame({"x1": x1, "x2": x2, "diagnosis": label, "score": score})


def holdout_calibration(seed: int, rows: int = 2000) -> dict[str, Any]:
    """What training records: the holdout's calibration check and the isotonic calibrator."""
    import numpy as np

    from mlops_core.model import calibration

    hold = rows_of(np.random.default_rng(seed + 1000), rows)
    result = calibration.check(
        (hold["diagnosis"] == POSITIVE).to_numpy(int), hold["score"].to_numpy(), max_ece=0.05, bins=10
    )
    return {**result, "positive_class": POSITIVE}


def table(
    *, seed: int = 0, days: int = 60, rows: int = 300, stable_days: int = STABLE_DAYS, end_scale: float = 0.25
) -> pd.DataFrame:
    """The dated table: record_id, event_date, features, label, the champion's score and prediction."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(days):
        day = START + timedelta(days=i)
        shift = max(0, i - stable_days + 1) / max(1, days - stable_days)
        frame = rows_of(rng, int(rng.poisson(rows)), scale=1.0 + (end_scale - 1.0) * shift)
        frame.insert(0, "record_id", [f"{day:%m%d}-{j}" for j in range(len(frame))])
        frame.insert(1, "event_date", day.isoformat())
        frame["label_date"] = (day + timedelta(days=DELAY)).isoformat()
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["prediction"] = np.where(out["score"] >= 0.5, POSITIVE, NEGATIVE)
    return out


def spec_for(on: str, *, n_resamples: int = 300) -> PipelineSpec:
    """The breast_cancer example as a monitored pipeline with labels 3 days late (column-partitioned)."""
    import yaml

    from mlops_core.spec import parse_spec

    data = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "dags/pipelines/breast_cancer.yaml").read_text()
    )
    data |= {
        "name": NAME,
        "evaluation": {**data["evaluation"], "floors": {}},
        "monitoring": {"enabled": True, "window_days": 7},
        "feedback": {
            "uri": f"${{MLOPS_LANDING}}/{NAME}/labels.csv",
            "partition": {"mode": "column", "column": "label_date", "lookback_days": DELAY + 2},
            "key_columns": ["record_id"],
            "delay_days": DELAY,
            "bootstrap": {"n_resamples": n_resamples, "seed": 0},
            "decay": {"on": on, "metric": "roc_auc", "max_drop": 0.05},
        },
    }
    return parse_spec(data)


def write_world(spec: PipelineSpec, lake: str, landing: str, frame: pd.DataFrame) -> None:
    """``monitor_predictions/ds=D`` for every day (the 7-day window's rows, each with its
    ``prediction_ds`` and ``proba_*`` columns, as ``scoring.batch_score`` writes them) and the labels."""
    from mlops_core.data import filesystems, storage

    window = spec.monitoring.window_days
    for i in range(frame["event_date"].nunique()):
        day = START + timedelta(days=i)
        first = (day - timedelta(days=window - 1)).isoformat()
        rows = frame.loc[(frame["event_date"] >= first) & (frame["event_date"] <= day.isoformat())]
        out = rows[["record_id", "event_date", "prediction"]].copy()
        out.insert(2, "prediction_ds", out["event_date"].astype("string"))
        out[f"proba_{NEGATIVE}"] = 1.0 - rows["score"]
        out[f"proba_{POSITIVE}"] = rows["score"]
        out["model_version"] = "1"
        storage.write_partition({"data": out}, lake, spec.name, "monitor_predictions", day)
    fs, path = filesystems.filesystem(filesystems.join(landing, spec.name, "labels.csv"))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe(path, frame[["record_id", "diagnosis", "label_date"]].to_csv(index=False).encode())


def replay(spec: PipelineSpec, lake: str, days: int, cal: dict[str, Any]) -> list[dict[str, Any]]:
    """Each monitored day D in order, as the monitoring DAG runs it: the estimate of D (the drift
    check), the realized performance of D - delay (the performance step), then the decay verdict
    of each policy: ``fire`` with ``decay.on: estimated`` (on the estimate's history), ``fire_realized``
    with ``realized`` (the same spec otherwise, on the realized history)."""
    from mlops_core.monitor import decay_policy, estimate, feedback

    assert spec.feedback is not None
    fb = spec.feedback.model_copy(update={"decay": spec.feedback.decay.model_copy(update={"on": "realized"})})
    on_realized = spec.model_copy(update={"feedback": fb})
    out = []
    for i in range(days):
        d = (START + timedelta(days=i)).isoformat()
        est = estimate.estimate_day(spec, lake, d, cal)
        estimate.record(spec, lake, est)
        if i >= DELAY:
            feedback.record(spec, lake, feedback.evaluate_day(spec, lake, d))
        verdict = decay_policy.decide(spec, estimate.history(spec, lake), d)
        realized = decay_policy.decide(on_realized, feedback.history(spec, lake), d)
        out.append({"ds": d, "estimate": est.to_dict(), "fire": verdict.fire, "fire_realized": realized.fire})
    return out


def paired(spec: PipelineSpec, lake: str) -> list[dict[str, Any]]:
    """Per prediction day with labels: the realized metrics and the estimate recorded for that day."""
    from mlops_core.monitor import estimate, feedback

    estimated = {str(d["ds"]): d for d in estimate.history(spec, lake)}
    rows = []
    for r in feedback.history(spec, lake):
        e = estimated.get(str(r["ds"]))
        if r.get("status") == "evaluated" and e is not None:
            rows.append(
                {"ds": r["ds"], "rows": r["rows"], "realized": r["metrics"], "estimated": e["metrics"]}
            )
    return rows


def first_fire(rows: list[dict[str, Any]], key: str = "fire") -> str | None:
    return next((str(r["ds"]) for r in rows if r[key]), None)


def mean_abs_error(rows: list[dict[str, Any]], metric: str) -> float:
    errors = [
        abs(r["estimated"][metric] - r["realized"][metric])
        for r in rows
        if r["realized"].get(metric) is not None
    ]
    return sum(errors) / len(errors)


def run(seed: int, quick: bool) -> dict[str, Any]:
    """Replay the world with both policies; the paired days, the MAE per metric and the first fires."""
    from mlops_core.base import settings
    from mlops_core.monitor import feedback

    feedback.champion_holdout = lambda *_: None  # no registry here (reference realized: not needed)
    days, n = (40, 150) if quick else (60, 300)
    frame = table(seed=seed, days=days, rows=n)
    cal = holdout_calibration(seed)
    spec = spec_for("estimated", n_resamples=100 if quick else 300)
    lake = settings.lake_root()
    write_world(spec, lake, settings.landing_root(), frame)
    results: dict[str, Any] = {"calibration": cal, "days": replay(spec, lake, days, cal)}
    results["paired"] = paired(spec, lake)
    results["mae"] = {m: mean_abs_error(results["paired"], m) for m in METRICS}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="40 days of about 150 rows (CI)")
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLOPS_LOCAL_DIR"] = tmp
        results = run(args.seed, args.quick)
    cal = results["calibration"]
    print(f"holdout calibration: ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}; isotonic calibrator fitted")
    print(
        "| prediction day | rows | roc_auc realized | roc_auc estimated | accuracy realized | accuracy estimated |"
    )
    print("|---|---|---|---|---|---|")
    for r in results["paired"]:
        re, es = r["realized"], r["estimated"]
        print(
            f"| {r['ds']} | {r['rows']} | {re['roc_auc']:.3f} | {es['roc_auc']:.3f} | "
            f"{re['accuracy']:.3f} | {es['accuracy']:.3f} |"
        )
    print("mean absolute error: " + ", ".join(f"{m} {v:.4f}" for m, v in results["mae"].items()))
    fired = {
        on: first_fire(results["days"], key)
        for on, key in (("estimated", "fire"), ("realized", "fire_realized"))
    }
    for on, day in fired.items():
        print(f"decay.on {on}: first fires on {day or 'never'} (monitored day)")
    # A wrong result fails the run (CI runs --quick in bench-quick)
    stable_end = (START + timedelta(days=STABLE_DAYS - 1)).isoformat()
    if results["mae"]["roc_auc"] > 0.03 or results["mae"]["accuracy"] > 0.03:
        raise SystemExit(f"WRONG: the estimate is off by {results['mae']} on average")
    if fired["estimated"] is None or fired["estimated"] <= stable_end:
        raise SystemExit(
            f"WRONG: decay on the estimate fired on {fired['estimated']}, expected after {stable_end}"
        )
    if fired["realized"] is not None and fired["realized"] < fired["estimated"]:
        raise SystemExit("WRONG: the realized decay fired before the estimate's, which needs no labels")
    print("estimate benchmark: results correct")


if __name__ == "__main__":
    main()
