"""The gate: floors, the paired bootstrap margin, first run, overrides, and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_core.model.evaluation import Bootstrap, Scored, decide, paired_bootstrap
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

SPEC = example_spec()  # roc_auc primary; floors roc_auc >= 0.95, recall >= 0.8; margin 0


def _boot(low, high, delta=None):
    return Bootstrap(delta if delta is not None else (low + high) / 2, low, high, 0.95, 1000, 1000)


GOOD = {"roc_auc": 0.98, "recall": 0.9}


def test_first_run_uses_floors_only():
    d = decide(SPEC, GOOD, None, None)
    assert d.promote and d.outcome == "promote"
    assert any("no champion yet" in r for r in d.reasons)


def test_floor_failure_rejects_even_without_champion():
    d = decide(SPEC, {"roc_auc": 0.93, "recall": 0.9}, None, None)
    assert not d.promote
    assert any("floor roc_auc >= 0.95: 0.9300 FAILS" in r for r in d.reasons)


def test_nan_metric_fails_its_floor():
    assert not decide(SPEC, {"roc_auc": math.nan, "recall": 0.9}, None, None).promote


def test_a_model_that_never_finds_the_positive_class_is_refused_whatever_its_auc():
    """Issue 29: ROC AUC 0.9 and accuracy 0.95 at recall 0.000 on a rare class used to be promoted."""
    spec = example_spec(evaluation={"primary_metric": "roc_auc", "floors": {"roc_auc": 0.7}})
    zero = {"roc_auc": 0.9, "accuracy": 0.95, "recall": 0.0, "precision": 0.0}
    d = decide(spec, zero, None, None, positive_class="malignant", threshold=None)
    assert not d.promote
    refusal = next(r for r in d.reasons if r.startswith("REFUSED"))
    assert "'malignant'" in refusal and "recall 0.000 and precision 0.000" in refusal
    assert "evaluation.threshold" in refusal and "docs/imbalanced.md" in refusal
    # a small but real recall passes this check (the floors judge how much is enough)
    assert decide(spec, {**zero, "recall": 0.02, "precision": 0.5}, None, None).promote
    # undefined (no positive row in the holdout) is not zero
    assert decide(spec, {**zero, "recall": math.nan, "precision": math.nan}, None, None).promote
    # multiclass and regression have no positive class
    assert not any(r.startswith("REFUSED") for r in decide(SPEC, GOOD, None, None).reasons)


def test_the_gate_log_shows_the_threshold_the_model_applies():
    d = decide(SPEC, GOOD, None, None, threshold=0.1234, positive_class="malignant")
    head = d.describe().splitlines()[0]
    assert "decision threshold 0.1234 on P(malignant)" in head
    assert "default (0.5" in decide(SPEC, GOOD, None, None, positive_class="malignant").describe()
    again = type(d).from_dict(d.to_dict())
    assert again.threshold == 0.1234 and again.positive_class == "malignant"


def test_interval_above_margin_promotes():
    d = decide(SPEC, GOOD, {"roc_auc": 0.96}, _boot(0.004, 0.03), champion_version="3")
    assert d.promote
    assert any("champion v3" in r and "met" in r for r in d.reasons)


def test_positive_point_estimate_but_interval_touching_zero_rejects():
    d = decide(SPEC, GOOD, {"roc_auc": 0.97}, _boot(-0.002, 0.03, delta=0.01), champion_version="3")
    assert not d.promote
    assert any("NOT met, the champion stays" in r for r in d.reasons)


def test_equal_model_never_replaces_champion():
    assert not decide(SPEC, GOOD, GOOD, _boot(0.0, 0.0, 0.0), champion_version="1").promote


def test_margin_is_required():
    spec = example_spec(evaluation={"primary_metric": "roc_auc", "min_improvement": 0.01})
    assert not decide(spec, GOOD, GOOD, _boot(0.005, 0.02), champion_version="1").promote
    assert decide(spec, GOOD, GOOD, _boot(0.011, 0.02), champion_version="1").promote


def test_undefined_bootstrap_rejects():
    d = decide(SPEC, GOOD, GOOD, Bootstrap(0.0, math.nan, math.nan, 0.95, 1000, 0), champion_version="1")
    assert not d.promote and any("bootstrap undefined" in r for r in d.reasons)


def test_champion_that_cannot_score_rejects_with_reason():
    d = decide(SPEC, GOOD, None, None, champion_version="2", champion_error="KeyError: 'mean_radius'")
    assert not d.promote and any("could not score" in r for r in d.reasons)


def test_force_needs_reason():
    with pytest.raises(ValueError, match="needs a reason"):
        decide(SPEC, {"roc_auc": 0.5, "recall": 0.1}, None, None, force=True, force_reason="  ")


def test_force_with_reason_promotes_and_records():
    d = decide(
        SPEC,
        {"roc_auc": 0.5, "recall": 0.1},
        None,
        None,
        force=True,
        forced_by="alice",
        force_reason="hotfix",
    )
    assert d.promote and d.forced and d.outcome == "forced"
    assert d.forced_by == "alice" and d.force_reason == "hotfix"
    assert any("FORCED by alice: hotfix (gate alone would reject)" in r for r in d.reasons)


def test_decision_round_trips():
    d = decide(SPEC, GOOD, None, None)
    from mlops_core.model.evaluation import GateDecision

    assert GateDecision.from_dict(d.to_dict()) == d


# --- the bootstrap itself ---------------------------------------------------------------------


def _binary(n=200, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.4, "pos", "neg")
    signal = (y == "pos").astype(float)
    return y, signal


def test_constant_metric_gives_zero_width_interval():
    y, signal = _binary()
    s = Scored(pred=np.where(signal > 0.5, "pos", "neg"), proba=signal)
    b = paired_bootstrap("accuracy", "binary", y, s, s, positive="pos", n_resamples=200)
    assert b.delta == 0.0 and b.low == 0.0 and b.high == 0.0 and b.n_valid == 200


def test_clearly_better_challenger_has_interval_above_zero():
    y, signal = _binary(400)
    rng = np.random.default_rng(1)
    good = np.clip(signal * 0.8 + rng.normal(0, 0.15, len(y)), 0, 1)
    weak = np.clip(signal * 0.2 + rng.normal(0, 0.4, len(y)), 0, 1)
    b = paired_bootstrap(
        "roc_auc",
        "binary",
        y,
        Scored(pred=y, proba=good),
        Scored(pred=y, proba=weak),
        positive="pos",
        n_resamples=300,
    )
    assert b.low > 0.1 and b.high >= b.low


def test_lower_is_better_metric_is_sign_flipped():
    y = np.linspace(0, 10, 100)
    good, bad = Scored(pred=y + 0.1), Scored(pred=y + 2.0)
    b = paired_bootstrap("rmse", "regression", y, good, bad, n_resamples=200)
    assert b.delta == pytest.approx(1.9) and b.low > 0


def test_single_class_holdout_makes_auc_undefined():
    y = np.array(["pos"] * 30)
    s = Scored(pred=y, proba=np.linspace(0, 1, 30))
    b = paired_bootstrap("roc_auc", "binary", y, s, s, positive="pos", n_resamples=100)
    assert b.n_valid == 0 and math.isnan(b.low)
    assert not decide(SPEC, GOOD, GOOD, b, champion_version="1").promote


def test_bootstrap_is_seeded():
    y, signal = _binary(150)
    rng = np.random.default_rng(5)
    a = Scored(pred=y, proba=np.clip(signal + rng.normal(0, 0.5, len(y)), 0, 1))
    c = Scored(pred=y, proba=np.clip(signal + rng.normal(0, 0.5, len(y)), 0, 1))
    args = ("roc_auc", "binary", y, a, c)
    assert paired_bootstrap(*args, positive="pos", n_resamples=100, seed=3) == paired_bootstrap(
        *args, positive="pos", n_resamples=100, seed=3
    )


# --- registry errors fail closed --------------------------------------------------------------


class _FakeClient:
    """An MlflowClient whose registry calls raise ``error`` (or answer ``aliases``)."""

    def __init__(self, error=None, aliases=None):
        self.error, self.aliases, self.registered = error, aliases or {}, []

    def get_registered_model(self, name):
        if self.error:
            raise self.error
        from types import SimpleNamespace

        return SimpleNamespace(aliases=self.aliases)

    def search_model_versions(self, filter_string):
        if self.error:
            raise self.error
        return []


def _mlflow_error(code, message="boom"):
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException(message, error_code=getattr(databricks_pb2, code))


@pytest.fixture
def fake_registry(monkeypatch):
    from mlops_core.runs import registry

    def install(client):
        monkeypatch.setattr(registry, "client", lambda: client)
        return client

    return install


def test_missing_model_means_no_champion(fake_registry):
    from mlops_core.runs import registry

    fake_registry(_FakeClient(_mlflow_error("RESOURCE_DOES_NOT_EXIST", "Registered Model not found")))
    assert registry.alias_version("m", registry.CHAMPION) is None
    assert registry.find_version("m", "dag/run", "r1") is None


def test_missing_alias_means_no_champion_and_present_alias_is_read(fake_registry):
    from mlops_core.runs import registry

    fake_registry(_FakeClient(aliases={"challenger": 3}))
    assert registry.alias_version("m", registry.CHAMPION) is None
    assert registry.alias_version("m", registry.CHALLENGER) == "3"


@pytest.mark.parametrize(
    ("code", "message", "hint"),
    [
        ("TEMPORARILY_UNAVAILABLE", "(sqlite3.OperationalError) database is locked", "SQLite"),
        ("PERMISSION_DENIED", "PERMISSION_DENIED: 403 forbidden", "credentials"),
        ("INTERNAL_ERROR", "API request failed with exception ConnectionError: refused", "start MLflow"),
        ("ENDPOINT_NOT_FOUND", "failed with error code 404 != 200 (a proxy)", "retry"),
        ("BAD_REQUEST", "bad gateway", "retry"),
    ],
)
def test_any_other_registry_error_fails_closed(fake_registry, monkeypatch, code, message, hint):
    from mlops_core import lifecycle
    from mlops_core.runs import registry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@mlflow.example:5000")
    fake_registry(_FakeClient(_mlflow_error(code, message)))
    with pytest.raises(registry.RegistryUnavailable) as info:
        registry.alias_version("m", registry.CHAMPION)
    text = str(info.value)
    assert "https://mlflow.example:5000" in text and "secret" not in text
    assert "failing closed" in text and code in text and hint in text
    with pytest.raises(registry.RegistryUnavailable):
        lifecycle._load_champion(SPEC)  # the gate never sees "no champion"
    with pytest.raises(registry.RegistryUnavailable):
        registry.find_version("m", "dag/run", "r1")  # no duplicate registration follows


def test_non_mlflow_errors_fail_closed_too(fake_registry):
    from mlops_core.runs import registry

    fake_registry(_FakeClient(ConnectionRefusedError("connection refused")))
    with pytest.raises(registry.RegistryUnavailable, match="start MLflow"):
        registry.alias_version("m", registry.CHAMPION)


def test_register_does_not_register_when_the_lookup_fails(fake_registry, monkeypatch):
    import mlflow

    from mlops_core.runs import registry

    fake_registry(_FakeClient(_mlflow_error("TEMPORARILY_UNAVAILABLE", "database is locked")))
    monkeypatch.setattr(mlflow, "register_model", lambda *a, **k: pytest.fail("registered anyway"))
    with pytest.raises(registry.RegistryUnavailable):
        registry.register("m", "models:/m-1", "r1", "dag/run", {})
