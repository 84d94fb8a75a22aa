"""Every threshold option tunes and applies on P(positive_class), whatever the labels' order.

Issue 29: the search tuned on the probability of ``classes_[1]`` for scorers without a
``pos_label`` and the saved ``FixedThresholdClassifier`` cut P(positive) at that number: recall
0.000 on the rare class. Here each option runs on a seeded 8 %-positive table with the positive
class as the minority and as the majority, its label sorting first and last; the recall the
search reaches on a holdout must be the recall of the model saved the package's way (MLflow's
sklearn flavor with skops: the same bytes and trusted types) and loaded again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score, recall_score

from mlops_core.model import threshold
from mlops_core.spec import ThresholdSearch
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

SETTINGS: list[Any] = [
    {"optimize": "f1"},
    {"optimize": "balanced_accuracy"},
    {"optimize": "recall_at_precision", "min_precision": 0.3},
    {"optimize": "precision_at_recall", "min_recall": 0.8},
    0.3,
]
# (labels of the rare class and of the common one, which is positive): both alphabetical orders
CASES = [
    ("bad", "good", "bad"),  # rare positive, sorts first
    ("yes", "no", "yes"),  # rare positive, sorts last
    ("bad", "good", "good"),  # common positive, sorts last
    ("yes", "no", "no"),  # common positive, sorts first
]


def _table(rare: str, common: str, n: int = 1600, seed: int = 3) -> pd.DataFrame:
    """Two informative numbers and a noise column; about 8 % of the rows are ``rare``."""
    rng = np.random.default_rng(seed)
    is_rare = rng.random(n) < 0.08
    x1 = rng.normal(np.where(is_rare, 1.3, 0.0), 1.0)
    x2 = rng.normal(np.where(is_rare, -0.9, 0.0), 1.0)
    return pd.DataFrame(
        {"x1": x1, "x2": x2, "noise": rng.normal(size=n), "label": np.where(is_rare, rare, common)}
    )


def _spec(setting: Any, positive: str) -> Any:
    return example_spec(
        target="label",
        positive_class=positive,
        model={"family": "linear", "params": {}, "seed": 5},
        features={"include": None, "id_columns": []},
        evaluation={"primary_metric": "roc_auc", "floors": {}, "threshold": setting},
    )


def _save_and_load(model: Any) -> Any:
    """skops with the trusted types training records (what MLflow's sklearn flavor writes and reads)."""
    import skops.io as sio

    from mlops_core.model.training import _serialization

    trusted = _serialization(model)["skops_trusted_types"]
    return sio.loads(sio.dumps(model), trusted=trusted)


@pytest.mark.parametrize(
    "setting", SETTINGS, ids=lambda s: getattr(s, "get", lambda _: None)("optimize") or str(s)
)
@pytest.mark.parametrize("rare,common,positive", CASES, ids=lambda v: str(v))
def test_tuned_recall_is_the_saved_models_recall(setting, rare, common, positive):
    from mlops_core.model.training import build_pipeline

    spec = _spec(setting, positive)
    df = _table(rare, common)
    train, hold = df.iloc[:1200], df.iloc[1200:]
    features = ["x1", "x2", "noise"]
    X, y, Xh, yh = train[features], train["label"], hold[features], hold["label"]

    model, chosen = threshold.apply(spec, build_pipeline(spec, features, []), X, y, positive)
    assert chosen is not None and 0.0 < chosen < 1.0
    assert threshold.of_model(model) == chosen
    if isinstance(setting, dict):  # what the search itself predicts (a second, identical fit)
        tuned = threshold.tune(spec, build_pipeline(spec, features, []), X, y, positive)
        assert round(float(tuned.best_threshold_), 6) == chosen
        searched = tuned.predict(Xh)
    else:
        proba = model.predict_proba(Xh)[:, list(model.classes_).index(positive)]
        searched = np.where(proba >= chosen, positive, rare if positive == common else common)
    tuned_recall = recall_score(yh, searched, pos_label=positive)

    loaded = _save_and_load(model)
    predicted = loaded.predict(Xh)
    assert recall_score(yh, predicted, pos_label=positive) == tuned_recall
    assert (predicted == searched).all()
    # the cut is on P(positive): rows at or above the threshold are positive, the others are not
    p_pos = loaded.predict_proba(Xh)[:, list(loaded.classes_).index(positive)]
    assert ((p_pos >= chosen) == (predicted == positive)).all()
    assert tuned_recall > (0.3 if isinstance(setting, dict) else 0.0)  # 0.000 before the fix
    if positive == rare and isinstance(setting, dict):
        if setting["optimize"] == "precision_at_recall":
            assert tuned_recall >= 0.6  # the target recall (0.8 on the folds) roughly holds
        if setting["optimize"] == "recall_at_precision":
            assert precision_score(yh, predicted, pos_label=positive) >= 0.2


def test_the_constraint_options_need_their_bound_and_recall_alone_is_refused():
    assert ThresholdSearch(optimize="precision_at_recall", min_recall=0.8).min_recall == 0.8
    with pytest.raises(ValueError, match="needs min_recall"):
        ThresholdSearch(optimize="precision_at_recall")
    with pytest.raises(ValueError, match="only it uses it"):
        ThresholdSearch(optimize="f1", min_recall=0.5)
    for alone in ("recall", "precision"):
        with pytest.raises(ValueError, match="precision_at_recall with min_recall"):
            ThresholdSearch(optimize=alone)


def test_of_model_reads_the_threshold_the_model_applies():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier

    X, y = np.arange(20.0).reshape(-1, 1), np.array(["a"] * 10 + ["b"] * 10)
    assert threshold.of_model(LogisticRegression().fit(X, y)) is None
    fixed = FixedThresholdClassifier(LogisticRegression(), threshold=0.25, pos_label="a").fit(X, y)
    assert threshold.of_model(fixed) == 0.25
    assert threshold.describe(0.25, "a") == "0.25 on P(a)"
    assert threshold.describe(None).startswith("default")
