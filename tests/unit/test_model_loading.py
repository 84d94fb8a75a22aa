"""What a model may contain is the package's decision, and every load checks what training recorded.

The hostile artifact of issue 23: a ``model.skops`` whose schema calls ``posix.system`` (built with
skops' own ``dumps``, its schema edited), with ``skops_trusted_types: [posix.system]`` in its
``MLmodel``. MLflow's loader passes that list to skops and the command runs (proven below). Each
load path of the package meets it: the challenger from XCom and from a remote job's
``result.json``, the champion after someone re-stamps the registry's digest tag, the smoke test,
batch scoring and deploy. Each refuses, and the command never runs (its marker file stays absent).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pytest
import yaml
from packaging.version import Version

from mlops_core import lifecycle, rollout, scoring
from mlops_core.base import settings
from mlops_core.data import filesystems
from mlops_core.model import remote, training
from mlops_core.runs import registry, run_artifacts, tracking
from mlops_core.spec import estimators
from tests.helpers import REPO, example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"
PROBLEMS = ("binary", "multiclass", "regression")


def crafted_skops(marker: Path) -> bytes:
    """A skops file whose loading calls ``posix.system("touch <marker>")``.

    skops' own ``dumps`` of the command's argument tuple, then the schema's top node rewritten into
    a ``ConstructorFromReduceNode`` of ``posix.system`` (what skops calls ``type(obj)(*args)`` with).
    """
    import skops.io as sio

    plain = zipfile.ZipFile(io.BytesIO(sio.dumps((f"touch {marker}",))))
    schema = json.loads(plain.read("schema.json"))
    meta = {k: schema.pop(k) for k in ("protocol", "_skops_version")}
    hostile = {**meta, "__class__": "system", "__module__": "posix"}
    hostile |= {"__loader__": "ConstructorFromReduceNode", "content": schema}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in plain.namelist():
            z.writestr(name, json.dumps(hostile) if name == "schema.json" else plain.read(name))
    return out.getvalue()


def plant(folder: Path, marker: Path, declared: list[str] | None = None) -> None:
    """What someone with write access to the artifact store does to a model folder: the file the
    MLmodel names (``model.skops`` today; MLflow 3.9 wrote skops models to ``model.pkl``)."""
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    (folder / meta["flavors"]["sklearn"]["pickled_model"]).write_bytes(crafted_skops(marker))
    meta["flavors"]["sklearn"]["skops_trusted_types"] = ["posix.system"] if declared is None else declared
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))


def _logged_folder(model_uri: str) -> Path:
    model_id = run_artifacts.model_id_of(model_uri)
    location = registry.client().get_logged_model(model_id).artifact_location
    return Path(urlparse(location).path if location.startswith("file:") else location)


def log_other_model(spec: Any, *, fmt: str = "skops", record: bool = True) -> tuple[str, str, Path]:
    """A run of the pipeline's experiment logging a small honest model (anyone with MLflow access
    can make one): (run_id, model_uri, its folder). ``record``: log the family param, as training does."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    tracking.configure()
    X, y = (
        pd.DataFrame({"mean_radius": [10.0, 11.0, 20.0, 21.0]}),
        ["benign", "benign", "malignant", "malignant"],
    )
    extra = {"skops_trusted_types": []} if fmt == "skops" else {}
    with mlflow.start_run(experiment_id=tracking.experiment_id(spec.name)) as run:
        with tracking.own_fresh_model():
            info = mlflow.sklearn.log_model(
                LogisticRegression().fit(X, y),
                name="model",
                serialization_format=fmt,
                pip_requirements=["scikit-learn"],  # skips inferring them in a subprocess (seconds)
                **extra,
            )
        if record:
            mlflow.log_param(run_artifacts.FAMILY_PARAM, "linear")
    return run.info.run_id, info.model_uri, _logged_folder(info.model_uri)


def forge_record(run_id: str, model_uri: str) -> None:
    """Record, on the attacker's own run, the digest of the files as they are now (a forged record)."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        run_artifacts.record_trained(model_uri)


def crafted_run(spec: Any, marker: Path, declared: list[str] | None = None) -> tuple[str, str]:
    """The attacker's best case: a crafted model on a run that records its id and digest itself."""
    run_id, model_uri, folder = log_other_model(spec)
    plant(folder, marker, declared)
    forge_record(run_id, model_uri)
    return run_id, model_uri


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def spec() -> Any:
    return example_spec()


@pytest.fixture
def raw_uri(landing: str, spec: Any) -> str:
    return lifecycle.ingest(spec, DS, settings.lake_root())["uri"]


def _fitted(family: str, problem: str, threshold: bool) -> Any:
    """A model of ``family`` as training builds it: the package's pipeline, the threshold wrapper."""
    import numpy as np
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=90), "b": rng.choice(["x", "y", None], size=90)})
    y = (
        rng.normal(size=90)
        if problem == "regression"
        else rng.integers(0, 3 if problem == "multiclass" else 2, 90)
    )
    stub = SimpleNamespace(model=SimpleNamespace(family=family, params={}, seed=0), problem_type=problem)
    params = {"rounds": 5} if estimators.get_family(family).framework else {}
    model = training.build_pipeline(stub, ["a"], ["b"], params=params).fit(X, y)  # type: ignore[arg-type]
    if threshold:
        model = FixedThresholdClassifier(FrozenEstimator(model), threshold=0.3, pos_label=1).fit(X, y)
    return model


@pytest.fixture
def every_family() -> Any:
    """The built-in families plus the framework example (a registered custom family)."""
    import sys

    saved = dict(estimators._REGISTRY)
    sys.path.insert(0, str(REPO / "include" / "examples" / "frameworks"))
    import lightgbm_booster

    lightgbm_booster.register()
    yield estimators.families()
    estimators._REGISTRY.clear()
    estimators._REGISTRY.update(saved)
    sys.path.remove(str(REPO / "include" / "examples" / "frameworks"))


def test_the_catalogue_trusts_what_each_family_holds_and_nothing_that_runs_code(
    every_family: list[str],
) -> None:
    """Every family, fitted for every problem (and with the threshold wrapper): skops' own list of
    the model's non-default types is within the package's list. A library upgrade that adds a type
    fails here, not at a load."""
    import skops.io as sio

    assert {"linear", "random_forest", "lightgbm", "lightgbm_booster"} <= set(every_family)
    for family in every_family:
        allowed = estimators.trusted_types(family)
        for problem in PROBLEMS:
            for threshold in (False, True) if problem == "binary" else (False,):
                held = set(sio.get_untrusted_types(data=sio.dumps(_fitted(family, problem, threshold))))
                assert held <= allowed, (family, problem, threshold, held - allowed)
        modules = {t.split(".")[0] for t in allowed}
        assert modules <= {"sklearn", "lightgbm", "numpy", "collections", "mlops_core"}, (family, modules)
        assert not {"posix.system", "os.system", "builtins.eval", "builtins.exec"} & allowed


def test_the_payload_runs_through_mlflow_and_mlflow_loaders_are_switched_off(
    spec: Any, marker: Path, local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: with MLflow's loader allowed (its default), the crafted model runs the command, as
    the issue reports. After :func:`tracking.configure` (every step runs it) MLflow refuses to load."""
    import mlflow
    from mlflow.exceptions import MlflowException

    _, model_uri = crafted_run(spec, marker)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    mlflow.sklearn.load_model(model_uri)
    assert marker.exists()  # the payload is real
    marker.unlink()
    tracking.configure()
    if Version(mlflow.__version__) < Version("3.17"):
        # MLflow < 3.17's switch covers pickle only: a skops model loads with the trusted types its
        # own MLmodel lists. The package never loads through MLflow (the tests above and below:
        # its own loader refuses the same model); docs/security.md says so.
        pytest.skip("MLflow < 3.17 cannot switch its skops loader off")
    for load in (mlflow.sklearn.load_model, mlflow.pyfunc.load_model):
        with pytest.raises(MlflowException, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
            load(model_uri)
    assert not marker.exists()


def test_the_challenger_from_xcom_or_a_remote_jobs_result_is_refused(
    spec: Any, raw_uri: str, marker: Path
) -> None:
    lake = settings.lake_root()
    trained = training.train(spec, raw_uri, lake, DS, {"airflow.run_id": "x1"}).to_dict()
    run_id, model_uri = crafted_run(spec, marker)
    forged = {**trained, "run_id": run_id, "model_uri": model_uri}
    # a forged XCom: the crafted model on a run that recorded its own digest; its MLmodel's list
    # asks for posix.system, which no 'linear' model holds
    with pytest.raises(run_artifacts.ArtifactRefused, match=r"asks skops to trust \['posix.system'\]"):
        lifecycle.evaluate(spec, forged, lake, DS)
    assert not marker.exists()
    # a remote job's result.json naming it (the job folder is in the lake, writable by the job)
    req = remote.prepare(spec, raw_uri, lake, DS, {}, 1, run_key="dag/remote")
    fs, path = filesystems.filesystem(req.result_uri)
    fs.pipe(path, json.dumps(forged).encode())
    with pytest.raises(run_artifacts.ArtifactRefused, match="posix.system"):
        lifecycle.evaluate(spec, remote.read_result(req), lake, DS)
    assert not marker.exists()
    # the MLmodel left honest: skops itself refuses, with the package's list
    run_id, model_uri = crafted_run(spec, marker, declared=[])
    with pytest.raises(run_artifacts.ArtifactRefused, match="holds types the package does not allow"):
        run_artifacts.load_trained(model_uri, run_id)
    assert not marker.exists()
    # the real challenger's files overwritten in the artifact store: not what its run recorded
    plant(_logged_folder(trained["model_uri"]), marker)
    with pytest.raises(run_artifacts.ArtifactRefused, match="changed since training"):
        lifecycle.evaluate(spec, trained, lake, DS)
    assert not marker.exists()


def test_the_champion_after_the_digest_tag_is_restamped_is_refused_everywhere(
    spec: Any, raw_uri: str, marker: Path
) -> None:
    """Files replaced and the registry tag re-stamped to match: the run's param still says otherwise."""
    from mlflow.exceptions import MlflowException

    lake = settings.lake_root()
    trained = training.train(spec, raw_uri, lake, DS, {"airflow.run_id": "c1"}).to_dict()
    evaluated = lifecycle.evaluate(spec, trained, lake, DS)
    decision = lifecycle.gate(spec, evaluated, trained["run_id"], force=True, forced_by="t", force_reason="t")
    version = lifecycle.register(spec, trained, decision.to_dict(), "dag/champion", {})["version"]
    deployment = rollout.deploy(spec, version)
    assert run_artifacts.load_verified(spec.name, version) is not None  # untouched: loads

    client = registry.client()
    plant(_logged_folder(trained["model_uri"]), marker)
    client.set_model_version_tag(
        spec.name,
        version,
        registry.DIGEST_TAG,
        run_artifacts.artifact_digest(f"models:/{spec.name}/{version}"),
    )
    with pytest.raises(MlflowException):  # and the run's record cannot be re-stamped
        client.log_param(trained["run_id"], run_artifacts.DIGEST_PARAM, "0" * 64)
    with pytest.raises(run_artifacts.ArtifactRefused, match="changed since training"):
        run_artifacts.load_verified(spec.name, version)
    with pytest.raises(run_artifacts.ArtifactRefused, match="changed since training"):
        scoring.batch_score(spec, raw_uri, lake, DS)
    # a deploy (to any target) checks before the files leave: the re-stamped digest tag no longer
    # matches the release seal (which covers the digest), and the files not the run's record
    with pytest.raises(
        registry.DecisionRefused, match="not sealed by the release steps|changed since training"
    ):
        rollout.deploy(spec, version)
    with pytest.raises(RuntimeError, match="changed since training"):
        rollout.smoke_test(spec, deployment, trained["holdout_uri"], evaluated["predictions_uri"])
    assert not marker.exists()


@pytest.mark.parametrize("declared", [None, []], ids=["mlmodel-lists-posix-system", "mlmodel-honest"])
def test_a_crafted_version_made_champion_is_refused_by_its_types(
    spec: Any, raw_uri: str, marker: Path, declared: list[str] | None
) -> None:
    """Registered from the attacker's own run, whose record matches its files: the types decide."""
    import mlflow

    run_id, model_uri = crafted_run(spec, marker, declared)
    version = str(mlflow.register_model(model_uri, spec.registered_model_name).version)
    registry.client().set_registered_model_alias(spec.registered_model_name, registry.CHAMPION, version)
    refusal = "posix.system" if declared is None else "holds types the package does not allow"
    with pytest.raises(run_artifacts.ArtifactRefused, match=refusal):
        run_artifacts.load_verified(spec.registered_model_name, version)
    with pytest.raises(run_artifacts.ArtifactRefused, match=refusal):
        scoring.batch_score(spec, raw_uri, settings.lake_root(), DS)
    assert not marker.exists()


def test_a_model_whose_run_recorded_no_digest_is_refused(spec: Any, local_dir: Path) -> None:
    import mlflow

    run_id, model_uri, _ = log_other_model(spec)  # an honest model, but no record of its files
    with pytest.raises(run_artifacts.ArtifactRefused, match=f"recorded no {run_artifacts.DIGEST_PARAM}"):
        run_artifacts.load_trained(model_uri, run_id)
    version = str(mlflow.register_model(model_uri, spec.registered_model_name).version)
    # a digest tag on the version (anyone can set one) does not stand in for the run's record
    registry.set_tags(
        spec.registered_model_name, version, {registry.DIGEST_TAG: run_artifacts.artifact_digest(model_uri)}
    )
    with pytest.raises(run_artifacts.ArtifactRefused, match="recorded no"):
        run_artifacts.load_verified(spec.registered_model_name, version)
    with pytest.raises(registry.DecisionRefused, match="recorded no"):
        run_artifacts.verify_artifact(spec.registered_model_name, version, {})


def test_a_model_uri_from_another_run_is_refused(spec: Any, local_dir: Path) -> None:
    ours, our_uri, _ = log_other_model(spec)
    forge_record(ours, our_uri)
    theirs, their_uri, _ = log_other_model(spec)
    forge_record(theirs, their_uri)
    assert run_artifacts.load_trained(our_uri, ours) is not None
    with pytest.raises(
        run_artifacts.ArtifactRefused, match=f"not the model its training run {ours} recorded"
    ):
        run_artifacts.load_trained(their_uri, ours)
    for uri in (f"runs:/{theirs}/model", f"models:/{spec.registered_model_name}/1"):
        with pytest.raises(run_artifacts.ArtifactRefused, match="not the model"):
            run_artifacts.load_trained(uri, ours)
    with pytest.raises(run_artifacts.ArtifactRefused, match="not an MLflow run id"):
        run_artifacts.load_trained(our_uri, "../../x")


def test_pickle_loads_only_on_the_pipelines_explicit_opt_in(spec: Any, local_dir: Path) -> None:
    run_id, model_uri, _ = log_other_model(spec, fmt="cloudpickle")
    forge_record(run_id, model_uri)
    with pytest.raises(run_artifacts.ArtifactRefused, match="saved with 'cloudpickle'.*model.allow_pickle"):
        run_artifacts.load_trained(model_uri, run_id)
    assert run_artifacts.load_trained(model_uri, run_id, allow_pickle=True).predict(
        pd.DataFrame({"mean_radius": [25.0]})
    ).tolist() == ["malignant"]
