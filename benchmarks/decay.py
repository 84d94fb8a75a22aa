"""Decay benchmark: a seeded dated regression table with a slow worsening, replayed day by day
through the feedback engine (:mod:`mlops_core.monitor.feedback`) with the defaults.

The table: ``days`` days of about ``rows`` rows each (Poisson), one row per ``record_id`` with its
``event_date``; the champion (v1) predicts ``progression`` with a residual of standard deviation
``sd_stable`` for the first ``stable_days`` days, then the residual grows linearly to ``sd_end``
by the last day (about 2.7x worse, as in issue #30). Labels arrive ``delay_days`` after their
day (``label_date``). The monitoring window is 7 days, so each monitored day's predictions hold
7 days of rows, each tagged with its own ``prediction_ds`` as ``scoring.batch_score`` does.

Replayed with ``feedback.decay`` on its defaults (reference ``realized``: the champion's first 7
evaluated days; ``max_drop`` 0.05; ``days`` 2; ``min_rows`` 20) and, for comparison, with
``reference: holdout`` against a holdout RMSE of 34.9 (a holdout harder than production, the
case of the issue). Prints one line per prediction day and the first day each policy fires.

    .venv/bin/python benchmarks/decay.py [--seed 0]
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
NAME = "decay_rmse"
STABLE_DAYS = 28
HOLDOUT_RMSE = 34.9  # the champion's holdout: the window's last 20 %, harder than production


def table(
    *,
    seed: int = 0,
    days: int = 60,
    rows: int = 36,
    stable_days: int = STABLE_DAYS,
    sd_stable: float = 12.0,
    sd_end: float = 33.0,
    delay_days: int = 3,
) -> pd.DataFrame:
    """The dated table: record_id, event_date, progression (the label), prediction, label_date."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(days):
        day = START + timedelta(days=i)
        n = int(rng.poisson(rows))
        worsening = max(0, i - stable_days + 1) / max(1, days - stable_days)
        sd = sd_stable + (sd_end - sd_stable) * worsening
        truth = rng.normal(150.0, 60.0, n)
        frames.append(
            pd.DataFrame(
                {
                    "record_id": [f"{day:%m%d}-{j}" for j in range(n)],
                    "event_date": day.isoformat(),
                    "progression": truth.round(2),
                    "prediction": (truth + rng.normal(0.0, sd, n)).round(2),
                    "label_date": (day + timedelta(days=delay_days)).isoformat(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def spec_for(**decay: Any) -> PipelineSpec:
    """The diabetes example as a monitored pipeline with labels (column-partitioned source and labels)."""
    import yaml

    from mlops_core.spec import parse_spec

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "dags/pipelines/diabetes.yaml").read_text())
    data |= {
        "name": NAME,
        "monitoring": {"enabled": True, "window_days": 7},
        "feedback": {
            "uri": f"${{MLOPS_LANDING}}/{NAME}/labels.csv",
            "partition": {"mode": "column", "column": "label_date", "lookback_days": 5},
            "key_columns": ["record_id"],
            "delay_days": 3,
            "bootstrap": {"n_resamples": 300, "seed": 0},
            "decay": decay,
        },
    }
    return parse_spec(data)


def write_world(spec: PipelineSpec, lake: str, landing: str, frame: pd.DataFrame) -> None:
    """``monitor_predictions/ds=D`` for every day (the 7-day window's rows, each with its
    ``prediction_ds``, as ``scoring.batch_score`` writes them) and the labels CSV."""
    from mlops_core.data import filesystems, storage

    window = spec.monitoring.window_days
    for i in range(frame["event_date"].nunique()):
        day = START + timedelta(days=i)
        first = (day - timedelta(days=window - 1)).isoformat()
        rows = frame.loc[(frame["event_date"] >= first) & (frame["event_date"] <= day.isoformat())]
        out = rows[["record_id", "event_date", "prediction"]].copy()
        out.insert(2, "prediction_ds", out["event_date"].astype("string"))
        out["model_version"] = "1"
        storage.write_partition({"data": out}, lake, spec.name, "monitor_predictions", day)
    fs, path = filesystems.filesystem(filesystems.join(landing, spec.name, "labels.csv"))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe(path, frame[["record_id", "progression", "label_date"]].to_csv(index=False).encode())


def replay(spec: PipelineSpec, lake: str, days: int) -> list[dict[str, Any]]:
    """Each monitored day D in order: the performance step for T = D - delay, then the decay verdict."""
    from mlops_core.monitor import decay_policy, feedback

    assert spec.feedback is not None
    out = []
    for i in range(spec.feedback.delay_days, days):
        d = (START + timedelta(days=i)).isoformat()
        day = feedback.evaluate_day(spec, lake, d)
        feedback.record(spec, lake, day)
        verdict = decay_policy.decide(spec, feedback.history(spec, lake), d)
        out.append({**day.to_dict(), "fire": verdict.fire})
    return out


def first_fire(rows: list[dict[str, Any]]) -> str | None:
    return next((str(r["evaluated_on"]) for r in rows if r["fire"]), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLOPS_LOCAL_DIR"] = tmp
        from mlops_core.base import settings
        from mlops_core.monitor import feedback

        # no registry here: the holdout the champion's training run would report
        feedback.champion_holdout = lambda *_: HOLDOUT_RMSE
        frame = table(seed=args.seed)
        results = {}
        for label, decay in (("realized (default)", {}), ("holdout", {"reference": "holdout"})):
            spec = spec_for(**decay)
            lake = f"{settings.lake_root()}/{label.split()[0]}"
            write_world(spec, lake, settings.landing_root(), frame)
            results[label] = replay(spec, lake, frame["event_date"].nunique())
        print(
            "| prediction day | rows | realized rmse [95% interval] | baseline | day | policy (run of day + 3) |"
        )
        print("|---|---|---|---|---|---|")
        for r in results["realized (default)"]:
            if r["value"] is None:
                continue
            base = f"{r['baseline']:.2f}" if r["baseline"] is not None else "forming"
            state = "decayed" if r["decayed"] else ("no decay" if r["status"] == "evaluated" else r["status"])
            print(
                f"| {r['ds']} | {r['rows']} | {r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}] | {base} | "
                f"{state} | {'FIRES' if r['fire'] else ''} |"
            )
        for label, rows in results.items():
            print(f"reference {label}: first fires on {first_fire(rows) or 'never'}")
        # A wrong result fails the run (CI runs this in bench-quick): the default fires, and only
        # after the stable stretch; a holdout harder than production never fires (issue #30).
        fired = first_fire(results["realized (default)"])
        stable_end = (START + timedelta(days=STABLE_DAYS - 1)).isoformat()
        if fired is None or fired <= stable_end:
            raise SystemExit(f"WRONG: the default fired on {fired}, expected after {stable_end}")
        if first_fire(results["holdout"]) is not None:
            raise SystemExit(
                "WRONG: the holdout reference fired; this table's holdout is harder than production"
            )
        print("decay benchmark: results correct")


if __name__ == "__main__":
    main()
