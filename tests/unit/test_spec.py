from __future__ import annotations

import pytest

from mlops_core.spec import SpecError, load_spec, parse_spec
from tests.helpers import PIPELINES, example_data, example_spec

pytestmark = pytest.mark.unit


def _base(**changes):
    data = {
        "name": "demo",
        "source": {"uri": "file:///tmp/x.csv"},
        "target": "y",
        "problem_type": "binary",
        "model": {"family": "linear"},
        "evaluation": {"primary_metric": "roc_auc"},
    }
    data.update(changes)
    return data


def _errors(data) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data, "p.yaml")
    return str(info.value)


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_pipelines_are_valid(path):
    spec = load_spec(path)
    assert spec.name == path.stem


def test_defaults_are_sensible():
    spec = parse_spec(_base())
    assert spec.retries == 2
    assert spec.evaluation.bootstrap.n_resamples == 1000
    assert spec.evaluation.min_improvement == 0.0
    assert spec.cloud == "local"
    assert spec.deployment.target == "auto"  # the cloud profile's target
    assert spec.training.backend == "auto"


def test_unknown_key_names_field_and_allowed_fields():
    msg = _errors(_base(model={"family": "linear", "colour": "red"}))
    assert "model.colour: unknown field" in msg
    assert "allowed here: family, params, seed" in msg


def test_unknown_top_level_key():
    assert "surprise: unknown field" in _errors(_base(surprise=1))


def test_wrong_type_names_field():
    msg = _errors(_base(retries="many"))
    assert "retries:" in msg and "valid integer" in msg and "'many'" in msg


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"retries": 11}, "retries: Input should be less than or equal to 10"),
        (
            {"evaluation": {"primary_metric": "roc_auc", "holdout": {"fraction": 0.9}}},
            "evaluation.holdout.fraction",
        ),
        (
            {"evaluation": {"primary_metric": "roc_auc", "bootstrap": {"n_resamples": 5}}},
            "evaluation.bootstrap.n_resamples",
        ),
        ({"model": {"family": "linear", "seed": -1}}, "model.seed"),
        ({"name": "Bad-Name"}, "name:"),
    ],
)
def test_bounds(change, fragment):
    assert fragment in _errors(_base(**change))


def test_estimator_allow_list_rejects_code():
    msg = _errors(_base(model={"family": "os.system"}))
    assert "model.family" in msg and "allow-list" in msg and "random_forest" in msg


def test_estimator_params_are_allow_listed():
    msg = _errors(_base(model={"family": "linear", "params": {"alpha": 1.0}}))
    assert "not allowed for family 'linear' (classifier)" in msg and "C" in msg


def test_seed_only_through_model_seed():
    assert "model.seed" in _errors(_base(model={"family": "random_forest", "params": {"random_state": 1}}))


def test_metric_must_fit_problem():
    msg = _errors(_base(evaluation={"primary_metric": "rmse"}))
    assert "'rmse' is not a binary metric" in msg


def test_a_per_class_metric_is_refused_with_the_way_to_get_it():
    msg = _errors(_base(evaluation={"primary_metric": "roc_auc", "floors": {"recall_bad": 0.5}}))
    assert "'recall_bad' is not a binary metric" in msg
    assert "set positive_class: bad and use recall" in msg and "1 - false_positive_rate" in msg
    assert "'rmse' is not a binary metric; choose one of" in _errors(
        _base(evaluation={"primary_metric": "rmse"})
    )


def test_threshold_options_and_their_bounds():
    ok = _base(
        evaluation={
            "primary_metric": "roc_auc",
            "threshold": {"optimize": "precision_at_recall", "min_recall": 0.8},
        }
    )
    assert parse_spec(ok).evaluation.threshold.min_recall == 0.8
    msg = _errors(_base(evaluation={"primary_metric": "roc_auc", "threshold": {"optimize": "recall"}}))
    assert "precision_at_recall with min_recall" in msg
    bad = _base(
        evaluation={
            "primary_metric": "roc_auc",
            "threshold": {"optimize": "precision_at_recall", "min_recall": 1.5},
        }
    )
    assert "min_recall" in _errors(bad)


def test_slices_min_positives_is_bounded():
    sl = {"columns": ["a"], "metrics": ["recall"]}
    assert (
        parse_spec(
            _base(evaluation={"primary_metric": "roc_auc", "slices": sl})
        ).evaluation.slices.min_positives
        == 10
    )
    assert "min_positives" in _errors(
        _base(evaluation={"primary_metric": "roc_auc", "slices": {**sl, "min_positives": -1}})
    )


def test_unknown_expectation():
    msg = _errors(_base(expectations=[{"expect_column_values_to_be_pretty": {"column": "a"}}]))
    assert "unknown expectation 'expect_column_values_to_be_pretty'" in msg


def test_expectation_short_and_long_form():
    spec = parse_spec(
        _base(
            expectations=[
                {"expect_column_values_to_not_be_null": {"column": "a"}},
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            ]
        )
    )
    assert [e.type for e in spec.expectations] == [
        "expect_column_values_to_not_be_null",
        "expect_table_row_count_to_be_between",
    ]


def test_partition_rules():
    assert "needs partition.column" in _errors(_base(source={"uri": "x", "partition": {"mode": "column"}}))
    assert "'{ds}'" in _errors(_base(source={"uri": "file:///tmp/x.csv", "partition": {"mode": "files"}}))


def test_local_target_has_no_canary():
    msg = _errors(_base(deployment={"target": "local", "strategy": "canary"}))
    assert "needs an endpoint target" in msg
    # with target auto the strategy follows the pipeline across clouds (local acts all at once)
    assert parse_spec(_base(deployment={"strategy": "canary"})).deployment.strategy == "canary"


def test_schedule_is_checked():
    assert "not a cron expression" in _errors(_base(schedule="every tuesday"))
    assert parse_spec(_base(schedule="0 3 * * 1")).schedule == "0 3 * * 1"


def test_file_name_must_match(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("name: demo\n")
    with pytest.raises(SpecError, match="must equal the file name"):
        import yaml

        path.write_text(yaml.safe_dump(_base()))
        load_spec(path)


def test_broken_yaml_syntax(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_env_expansion(monkeypatch):
    from mlops_core.base.settings import expand

    monkeypatch.setenv("MY_BUCKET", "s3://bucket")
    assert expand("${MY_BUCKET}/x") == "s3://bucket/x"
    assert expand("${NOPE_NOT_SET:-file:///d}/x") == "file:///d/x"
    with pytest.raises(KeyError, match="NOPE_NOT_SET"):
        expand("${NOPE_NOT_SET}/x")


def test_example_helper_renames():
    assert example_spec(name="breast_cancer").name == "breast_cancer"


@pytest.mark.parametrize("word", ["Yes", "No", "on", "true", "False"])
def test_positive_class_read_by_yaml_as_a_boolean_is_refused_with_the_fix(tmp_path, word):
    import yaml

    data = example_data(positive_class="PLACEHOLDER")
    path = tmp_path / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False).replace("PLACEHOLDER", word))
    with pytest.raises(
        SpecError,
        match=r'positive_class: YAML read the label as the boolean .*quote it: positive_class: "Yes"',
    ):
        load_spec(path)


def test_numeric_positive_class_keeps_working():
    assert example_spec(positive_class=1).positive_class == 1
    assert example_spec(positive_class="Yes").positive_class == "Yes"


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        (
            {
                "expect_column_values_to_be_in_set": {
                    "column": "diagnosis",
                    "value_set": ["a"],
                    "row_condition": "@pd.io.common.os.system('id')",
                    "condition_parser": "pandas",
                }
            },
            "'row_condition' is not allowed (a row condition is evaluated as code on the worker)",
        ),
        (
            {"expect_column_values_to_be_between": {"columm": "mean_radius", "min_value": 1}},
            "unknown argument 'columm' (did you mean 'column'?)",
        ),
        ({"expect_column_values_to_be_between": {"column": "mean_radius"}}, "needs min_value or max_value"),
        (
            {"expect_column_values_to_be_between": {"column": "x", "min_value": {"$PARAMETER": "x"}}},
            "min_value must be a finite number or an ISO date string",
        ),
        (
            {"expect_column_values_to_be_between": {"column": "x", "max_value": float("nan")}},
            "max_value must be a finite number",
        ),
        (
            {"expect_column_values_to_not_be_null": {"column": "x", "mostly": 2}},
            "mostly must be a number from 0 to 1",
        ),
        (
            {"expect_column_values_to_match_regex": {"column": "x", "regex": "("}},
            "regex must be a regular expression",
        ),
        (
            {"expect_column_values_to_be_in_set": {"column": "x", "value_set": list(range(10001))}},
            "value_set must be a list of at most 10000",
        ),
    ],
)
def test_expectation_arguments_come_from_an_allow_list(expectation, message):
    with pytest.raises(SpecError) as err:
        parse_spec(example_data(expectations=[expectation]))
    assert message in str(err.value)
    assert "expectations.0" in str(err.value)
