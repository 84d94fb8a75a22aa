"""Static catalogues stay true to the installed libraries."""

from __future__ import annotations

import pytest

from mlops_core.spec.catalog import EXPECTATIONS, METRICS, metrics_for
from mlops_core.spec.estimators import build_estimator, families, get_family

pytestmark = pytest.mark.unit


def test_every_expectation_exists_in_great_expectations():
    import great_expectations.expectations as gxe

    from mlops_core.data.validation import _class_name

    missing = [e for e in sorted(EXPECTATIONS) if getattr(gxe, _class_name(e), None) is None]
    assert missing == []


def test_every_allowed_expectation_argument_is_a_real_one_and_none_runs_code():
    import great_expectations.expectations as gxe

    from mlops_core.data.validation import _class_name
    from mlops_core.spec.catalog import EXPECTATION_ARGS, FORBIDDEN_ARGS

    for name, args in EXPECTATION_ARGS.items():
        fields = set(getattr(gxe, _class_name(name)).__fields__)
        assert set(args) <= fields, (name, set(args) - fields)
        assert not set(args) & set(FORBIDDEN_ARGS), name
        # every field GX has is either allowed or forbidden on purpose for this expectation,
        # except value kinds a YAML cannot express (suite-parameter dicts)
        assert {"row_condition", "condition_parser"} & fields <= set(FORBIDDEN_ARGS)


@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("problem", ["binary", "regression"])
def test_every_family_builds_with_every_allowed_param(family, problem):
    fam = get_family(family)
    est = build_estimator(family, problem, {}, seed=3)
    assert est.get_params()[fam.seed_param] == 3
    allowed = set(est.get_params())
    kind_params = {p for p in fam.params if p in allowed}
    # every allow-listed parameter that belongs to this kind's class is a real constructor parameter
    from mlops_core.spec.estimators import _PER_KIND_ONLY

    kind = "regressor" if problem == "regression" else "classifier"
    expected = {p for p in fam.params if _PER_KIND_ONLY.get(p, kind) == kind}
    assert expected <= allowed, expected - allowed
    assert kind_params <= allowed


def test_metrics_cover_each_problem():
    for problem in ("binary", "multiclass", "regression"):
        assert metrics_for(problem)
    assert METRICS["rmse"].higher_is_better is False
