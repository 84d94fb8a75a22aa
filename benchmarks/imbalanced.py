"""Imbalanced target: what each ``evaluation.threshold`` option does to the rare class (docs/imbalanced.md).

Data: a seeded table (sklearn ``make_classification``, 6,000 rows, 12 features of which 5 are
informative, 5 % positive, 2 % of labels flipped), labels ``bad`` (rare, the positive class) and
``good`` -- ``bad`` sorts first, the order that put the tuned threshold on the wrong class before
issue 29. The package's own code path: :func:`mlops_core.model.training.build_pipeline` and
:func:`mlops_core.model.threshold.apply` fit on the training rows (80 %, stratified), the holdout
metrics are :func:`mlops_core.model.evaluation.metric`, the gate is :func:`mlops_core.model.evaluation.decide`
with the scaffold's floors for an imbalanced target (roc_auc 0.7, recall 0.5).

    PYTHONPATH=include .venv/bin/python benchmarks/imbalanced.py [--rows 6000] [--family random_forest]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

OPTIONS: list[tuple[str, Any, dict[str, Any]]] = [
    ("no threshold (predict: 0.5)", None, {}),
    ("threshold: 0.2", 0.2, {}),
    ("optimize: f1", {"optimize": "f1"}, {}),
    ("optimize: balanced_accuracy", {"optimize": "balanced_accuracy"}, {}),
    (
        "optimize: recall_at_precision, min_precision: 0.3",
        {"optimize": "recall_at_precision", "min_precision": 0.3},
        {},
    ),
    (
        "optimize: precision_at_recall, min_recall: 0.6",
        {"optimize": "precision_at_recall", "min_recall": 0.6},
        {},
    ),
    ("no threshold, class_weight: balanced", None, {"class_weight": "balanced"}),
]


def table(rows: int, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=12,
        n_informative=5,
        n_redundant=2,
        weights=[0.95, 0.05],
        flip_y=0.02,
        class_sep=0.8,
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["status"] = np.where(y == 1, "bad", "good")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--family", default="random_forest")
    args = parser.parse_args()

    from sklearn.model_selection import train_test_split

    from mlops_core.model import evaluation, threshold
    from mlops_core.model.training import build_pipeline
    from mlops_core.spec import parse_spec

    frame = table(args.rows)
    features = [c for c in frame.columns if c != "status"]
    train, hold = train_test_split(frame, test_size=0.2, stratify=frame["status"], random_state=7)
    print(
        f"{len(frame)} rows, {(frame['status'] == 'bad').mean():.1%} 'bad'; holdout {len(hold)} rows, "
        f"{int((hold['status'] == 'bad').sum())} 'bad'; family {args.family}"
    )
    print("| option | threshold on P(bad) | roc_auc | average_precision | recall | precision | gate |")
    print("|---|---|---|---|---|---|---|")
    for label, setting, params in OPTIONS:
        spec = parse_spec(
            {
                "name": "imbalanced",
                "source": {"uri": "file:///tmp/imbalanced.csv"},
                "target": "status",
                "problem_type": "binary",
                "positive_class": "bad",
                "model": {"family": args.family, "params": params, "seed": 42},
                "evaluation": {
                    "primary_metric": "roc_auc",
                    "floors": {"roc_auc": 0.7, "recall": 0.5},
                    "threshold": setting,
                },
            }
        )
        model, _ = threshold.apply(
            spec, build_pipeline(spec, features, []), train[features], train["status"], "bad"
        )
        scored = evaluation.score(model, hold[features], "binary", "bad")
        y = hold["status"].to_numpy()
        m = {
            k: evaluation.metric(k, "binary", y, scored, "bad")
            for k in ("roc_auc", "average_precision", "recall", "precision")
        }
        d = evaluation.decide(spec, m, None, None, positive_class="bad")
        gate = (
            "promote"
            if d.promote
            else "reject: "
            + "; ".join(
                r.split(":")[0] if r.startswith("REFUSED") else r
                for r in d.reasons
                if "FAILS" in r or r.startswith("REFUSED")
            )
        )
        applied = threshold.of_model(model)
        print(
            f"| {label} | {threshold.describe(applied, 'bad') if applied is not None else 'default (0.5)'} | "
            f"{m['roc_auc']:.3f} | {m['average_precision']:.3f} | {m['recall']:.3f} | {m['precision']:.3f} | {gate} |"
        )


if __name__ == "__main__":
    main()
