"""#25 trap 5: the gate log showed only the primary metric; it lists every metric, the champion's
value and the floor where one is set (direction from the metric catalogue)."""

from __future__ import annotations

import pytest

from mlops_core.model.evaluation import GateDecision

pytestmark = pytest.mark.unit


def test_the_gate_log_lists_every_metric_with_champion_and_floor() -> None:
    decision = GateDecision(
        promote=False,
        reasons=["recall 0.41 < floor 0.5"],
        primary_metric="roc_auc",
        challenger={"recall": 0.41, "roc_auc": 0.91, "log_loss": 0.31},
        champion={"recall": 0.55, "roc_auc": 0.90, "log_loss": 0.33},
        champion_version="3",
        floors={"recall": 0.5, "log_loss": 0.5},
    )
    lines = decision.describe().splitlines()
    at = lines.index("  metrics (challenger; champion v3; floor):")
    assert lines[at + 1 :] == [
        "    roc_auc (primary): 0.9100, champion v3 0.9000",
        "    log_loss: 0.3100, champion v3 0.3300, floor <= 0.5",
        "    recall: 0.4100, champion v3 0.5500, floor >= 0.5",
    ]


def test_a_first_model_has_no_champion_column() -> None:
    decision = GateDecision(
        promote=True, reasons=[], primary_metric="rmse", challenger={"rmse": 3.2}, floors={"rmse": 4.0}
    )
    assert decision.describe().splitlines()[1:] == [
        "  metrics (challenger; floor):",
        "    rmse (primary): 3.2000, floor <= 4",
    ]
