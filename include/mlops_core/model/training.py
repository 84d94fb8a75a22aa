"""Training: features, holdout split, a scikit-learn Pipeline, and a fully tracked MLflow run."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_core.data.columns import TrainingDataError, feature_columns
from mlops_core.model.pipeline import build_pipeline
from mlops_core.spec.estimators import get_family

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.data.storage import Manifest
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    model_uri: str
    holdout_uri: str
    experiment_id: str
    n_train: int
    n_holdout: int
    numeric: list[str]
    categorical: list[str]
    positive_class: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def positive_label(spec: PipelineSpec, y: pd.Series) -> Any:
    """The positive class of a binary target (``positive_class`` or the obvious 1/True)."""
    labels = sorted(y.dropna().unique().tolist(), key=str)
    if spec.problem_type != "binary":
        return None
    if len(labels) != 2:
        raise TrainingDataError(
            f"binary target {spec.target!r} has {len(labels)} label(s) {labels[:10]}; it needs exactly 2"
        )
    if spec.positive_class is not None:
        match = [v for v in labels if str(v) == str(spec.positive_class)]
        if not match:
            raise TrainingDataError(
                f"positive_class {spec.positive_class!r} is not a label of {spec.target!r} {labels}"
            )
        return match[0]
    for pos in (1, True):
        if pos in labels:
            return pos
    raise TrainingDataError(f"binary target labels {labels} are not 0/1: set positive_class to one of them")


def split_holdout(spec: PipelineSpec, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic train/holdout split (stratified for classification, latest rows for ``time``)."""
    from sklearn.model_selection import train_test_split

    h = spec.evaluation.holdout
    if h.strategy == "time":
        import pandas as pd

        order = pd.to_datetime(df[h.column], errors="coerce").sort_values(kind="stable").index
        cut = int(round(len(df) * (1 - h.fraction)))
        return df.loc[order[:cut]].reset_index(drop=True), df.loc[order[cut:]].reset_index(drop=True)
    stratify = df[spec.target] if spec.problem_type != "regression" else None
    if stratify is not None and stratify.value_counts().min() < 2:
        stratify = None
    train, hold = train_test_split(df, test_size=h.fraction, random_state=h.seed, stratify=stratify)
    return train.reset_index(drop=True), hold.reset_index(drop=True)


def _prepare(
    spec: PipelineSpec, df: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str], Any]:
    if spec.target not in df.columns:
        raise TrainingDataError(
            f"target {spec.target!r} is not in the data (columns: {list(df.columns)[:20]})"
        )
    df = df.loc[df[spec.target].notna()].reset_index(drop=True)
    if len(df) < 20:
        raise TrainingDataError(f"only {len(df)} labelled rows; at least 20 are needed to train and hold out")
    if spec.problem_type != "regression" and df[spec.target].nunique() < 2:
        raise TrainingDataError(f"target {spec.target!r} has a single class; a classifier needs at least two")
    numeric, categorical = feature_columns(spec, df)
    pos = positive_label(spec, df[spec.target])
    train_df, hold_df = split_holdout(spec, df)
    return train_df, hold_df, numeric, categorical, pos


def _serialization(pipe: Any, allow_pickle: bool = False) -> dict[str, Any]:
    """skops (no pickle on load); the ``MLmodel`` lists the types of the model we just fitted.

    That list is for MLflow's own loaders (serving images). The package loads with the types its
    catalogue allows for the family (:func:`mlops_core.spec.estimators.trusted_types`) and refuses an
    artifact whose list asks for more (:func:`mlops_core.runs.run_artifacts.load_model`).
    Estimators skops cannot write fall back to cloudpickle only with ``model.allow_pickle``.
    """
    try:
        import warnings

        # Importing skops.io probes an attribute of every loaded module to name its trusted types;
        # in an Airflow process each probe of a deprecated airflow.* name warns (~1,160 log lines,
        # seconds per training). The import itself is where it happens, so it goes under the filter.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import skops.io as sio

            trusted = sio.get_untrusted_types(data=sio.dumps(pipe))
        return {"serialization_format": "skops", "skops_trusted_types": trusted}
    except Exception as err:  # noqa: BLE001 - any skops failure means: cloudpickle or nothing
        if not allow_pickle:
            raise TrainingDataError(
                f"skops cannot serialise this model ({err}); saving it with pickle would let anyone who "
                "can write the artifact store run code on the workers. Choose another model.family, or "
                "set model.allow_pickle: true if you accept that"
            ) from err
        log.warning("skops cannot serialise this model (%s); using cloudpickle (model.allow_pickle)", err)
        return {"serialization_format": "cloudpickle"}


def pip_requirements(spec: PipelineSpec) -> list[str]:
    """What the model needs to load, pinned from this environment (the lock).

    Passed to ``log_model`` so MLflow does not infer requirements by loading the model in a
    subprocess (tens of seconds per training run).
    """
    from importlib.metadata import PackageNotFoundError, version

    names = ["mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy", "cloudpickle"]
    if spec.model.family == "lightgbm":
        names.append("lightgbm")
    framework = get_family(spec.model.family).framework
    if framework is not None:
        names += list(framework.requirements)
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def _log_native(spec: PipelineSpec, pipe: Any) -> None:
    """A framework family with an MLflow flavor: its native model, logged with that flavor as
    ``native_model`` (for the framework's own serving; the package itself never loads it)."""
    import importlib

    import mlflow

    framework = get_family(spec.model.family).framework
    if framework is None or framework.flavor is None:
        return
    model = pipe
    while not hasattr(model, "steps"):  # FixedThresholdClassifier (evaluation.threshold) wraps the pipeline
        model = getattr(model, "estimator_", None) or model.estimator
    info = importlib.import_module(framework.flavor).log_model(
        model.steps[-1][1].native(), name="native_model", pip_requirements=pip_requirements(spec)
    )
    mlflow.set_tag("mlops.native_model_uri", info.model_uri)


def feature_importance(pipe: Any, X: pd.DataFrame, y: Any, seed: int, rows: int = 2000) -> dict[str, float]:
    """Permutation importance of each *input* column (the pipeline's, so one-hot groups count once).

    On at most ``rows`` training rows, 3 repeats: model-agnostic, bounded cost. Monitoring can
    weight the drift share with it (``monitoring.weighting: importance``). Negative values are 0.
    """
    from sklearn.inspection import permutation_importance

    sample = X.sample(n=min(rows, len(X)), random_state=seed)
    target = y.loc[sample.index]
    result = permutation_importance(pipe, sample, target, n_repeats=3, random_state=seed, n_jobs=1)
    return {
        str(c): round(max(float(v), 0.0), 6) for c, v in zip(X.columns, result.importances_mean, strict=True)
    }


def _log_drift_baseline(spec: PipelineSpec, raw: pd.DataFrame, pipe: Any, X: pd.DataFrame, y: Any) -> None:
    """What monitoring reads back from the champion's run: the feature importance its drift share
    is weighted with (``weighting: importance``) and how much the window drifts against itself
    (``drift_baseline.json``, ``monitoring.calibration``)."""
    import mlflow

    from mlops_core.model.baseline import BASELINE_ARTIFACT, training_baseline

    weights = None
    if spec.monitoring.weighting == "importance":
        weights = feature_importance(pipe, X, y, spec.model.seed)
        mlflow.log_dict(weights, "feature_importance.json")
    if spec.monitoring.calibration.enabled:
        baseline = training_baseline(spec, raw, pipe, weights)
        mlflow.log_dict(baseline, BASELINE_ARTIFACT)
        if baseline.get("calibrated"):
            mlflow.log_metric("drift_baseline_share_quantile", baseline["share_quantile"])


def training_rows(
    spec: PipelineSpec,
    raw_uri: str,
    *,
    version: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.Series, list[str], list[str], Any]:
    """``X``, ``y`` of the training rows (the holdout split off exactly as :func:`train` does),
    the numeric and categorical features and the positive class: what a search trial scores on."""
    from mlops_core.data import storage

    raw = storage.read_frame(raw_uri, storage_options=storage_options, version=version)
    train_df, _, numeric, categorical, pos = _prepare(spec, raw)
    return train_df[numeric + categorical], train_df[spec.target], numeric, categorical, pos


def _search(
    spec: PipelineSpec,
    X: pd.DataFrame,
    y: pd.Series,
    numeric: list[str],
    categorical: list[str],
    pos: Any,
    searched: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The best trial's params when ``model.search`` is set (logged on the active run), else {}."""
    if spec.model.search is None:
        return {}
    import mlflow

    from mlops_core.model.search import SearchResult, run_search

    if searched is not None:
        found = SearchResult(
            best_params=dict(searched["best_params"]),
            best_value=float(searched["best_value"]),
            metric=str(searched["metric"]),
            trials=list(searched.get("trials") or []),
            seconds=float(searched.get("seconds") or 0.0),
        )
        _log_platform_trials(found, searched)
    else:
        found = run_search(spec, X, y, numeric, categorical, pos)
    mlflow.set_tags(
        {
            "mlops.search": f"{len(found.trials)} trials, {found.completed} complete, {found.pruned} pruned",
            "mlops.search_best": ", ".join(f"{k}={v}" for k, v in found.best_params.items()),
        }
    )
    mlflow.log_metrics(
        {
            f"search_best_cv_{found.metric}": found.best_value,
            "search_trials": float(len(found.trials)),
            "search_pruned": float(found.pruned),
            "search_seconds": found.seconds,
        }
    )
    mlflow.log_dict(
        {"metric": found.metric, "best_params": found.best_params, "trials": found.trials}, "search.json"
    )
    return found.best_params


def _log_platform_trials(found: Any, searched: dict[str, Any]) -> None:
    """A platform search's trials as child runs of the training run, as the local search logs its own."""
    import mlflow

    parent = mlflow.active_run()
    experiment = parent.info.experiment_id if parent is not None else None
    mlflow.set_tags({"mlops.search_tuner": str(searched.get("backend", "platform"))})
    if searched.get("tuning_job"):
        mlflow.set_tag("mlops.search_tuning_job", str(searched["tuning_job"]))
    for trial in found.trials:
        with mlflow.start_run(run_name=f"trial-{trial['trial']}", nested=True, experiment_id=experiment):
            mlflow.set_tags(
                {"mlops.search_trial": str(trial["trial"]), "mlops.search_state": str(trial["state"])}
            )
            mlflow.log_params({f"param.{k}": v for k, v in (trial.get("params") or {}).items()})
            for fold, value in enumerate(trial.get("folds") or []):
                mlflow.log_metric(f"cv_{found.metric}", float(value), step=fold)
            if trial.get("value") is not None:
                mlflow.log_metric(f"cv_mean_{found.metric}", float(trial["value"]))


# long: the signature and docstring take 17 lines; the body is one MLflow run, read top to bottom
def train(
    spec: PipelineSpec,
    raw_uri: str,
    lake_root: str,
    ds: str,
    tags: dict[str, str],
    *,
    storage_options: dict[str, Any] | None = None,
    searched: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit the spec's model on the partition at ``raw_uri`` and log everything to one MLflow run.

    The holdout rows are written to ``<lake>/<name>/holdout/ds=<ds>/`` so evaluation scores the
    challenger and the champion on exactly the same rows. ``searched``: the result of a search the
    cloud's tuning service ran (:func:`mlops_core.model.tuning.collect`); its best params are used instead
    of searching here, and only on the partition version its trials read.
    """
    import mlflow

    from mlops_core.data import contract
    from mlops_core.model import threshold
    from mlops_core.runs import run_artifacts, tracking

    raw_manifest, raw = _read_pinned(raw_uri, storage_options, searched)
    train_df, hold_df, numeric, categorical, pos = _prepare(spec, raw)
    features = numeric + categorical
    hold_manifest = _write_holdout(spec, hold_df, lake_root, ds, raw_uri, raw_manifest, storage_options)
    X, y = train_df[features], train_df[spec.target]

    exp_id = tracking.experiment_id(spec.name)
    run_tags = {**tags, **_lineage_tags(spec, raw_uri, raw_manifest, hold_manifest, ds)}
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{spec.name}-{ds}", tags=run_tags) as run:
        # model.search: trials on the training rows only (child runs), the best params win
        params = {**spec.model.params, **_search(spec, X, y, numeric, categorical, pos, searched)}
        pipe = build_pipeline(spec, numeric, categorical, params=params)
        # fits; with evaluation.threshold the model carries its decision threshold (binary only)
        pipe, _ = threshold.apply(spec, pipe, X, y, pos)
        _log_params(spec, pipe, params, len(train_df), len(hold_df), numeric, categorical, pos)
        mlflow.log_dict({"numeric": numeric, "categorical": categorical}, "features.json")
        # what validate checks every new partition against while this model is the champion
        mlflow.log_dict(contract.learn(raw, spec), "contract.json")
        if spec.monitoring.enabled:
            _log_drift_baseline(spec, raw, pipe, X, y)
        _log_inputs(spec, ds, raw, raw_uri, raw_manifest, hold_df, hold_manifest)
        model_uri = _log_model(spec, pipe, X)
        # the model's id and digest as run params (immutable): every load checks both
        run_artifacts.record_trained(model_uri)
        _log_native(spec, pipe)
    log.info(
        "trained %s on %d rows (%d held out); run %s",
        spec.model.family,
        len(train_df),
        len(hold_df),
        run.info.run_id,
    )
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=model_uri,
        holdout_uri=hold_manifest.uri,
        experiment_id=exp_id,
        n_train=len(train_df),
        n_holdout=len(hold_df),
        numeric=numeric,
        categorical=categorical,
        positive_class=pos.item() if hasattr(pos, "item") else pos,
    )


def _read_pinned(
    raw_uri: str, storage_options: dict[str, Any] | None, searched: dict[str, Any] | None
) -> tuple[Manifest, pd.DataFrame]:
    """The partition at one version, pinned (and the version a tuning service's search read)."""
    from mlops_core.data import storage

    # one version, pinned: a rewrite of the partition meanwhile cannot mix two versions in the lineage
    raw_manifest = storage.read_manifest(raw_uri, storage_options)
    if searched is not None and searched.get("raw_version") not in (None, raw_manifest.version):
        raise TrainingDataError(
            f"the partition {raw_uri} is at version {raw_manifest.version} but the search ran on version "
            f"{searched['raw_version']}: its best params were chosen on other rows; clear the search task "
            "to search again"
        )
    return raw_manifest, storage.read_frame(
        raw_uri, storage_options=storage_options, version=raw_manifest.version
    )


def _write_holdout(
    spec: PipelineSpec,
    hold_df: pd.DataFrame,
    lake_root: str,
    ds: str,
    raw_uri: str,
    raw_manifest: Manifest,
    storage_options: dict[str, Any] | None,
) -> Manifest:
    """The holdout rows as ``<lake>/<name>/holdout/ds=<ds>/``, naming the partition they came from."""
    from mlops_core.data import storage

    return storage.write_partition(
        {"data": hold_df},
        lake_root,
        spec.name,
        "holdout",
        ds,
        extra={
            "source": raw_uri,
            "source_sha256": raw_manifest.sha256,
            "source_version": raw_manifest.version,
        },
        storage_options=storage_options,
    )


def _lineage_tags(
    spec: PipelineSpec, raw_uri: str, raw_manifest: Manifest, hold_manifest: Manifest, ds: str
) -> dict[str, str]:
    """The training run's lineage tags: the exact partitions it read and wrote, and the code."""
    from mlops_core.runs import tracking

    return {
        "mlops.pipeline": spec.name,
        "mlops.raw_uri": raw_uri,
        "mlops.raw_sha256": raw_manifest.sha256,
        "mlops.raw_manifest_version": str(raw_manifest.version),
        "mlops.raw_manifest_uri": raw_manifest.manifest_uri,
        "mlops.holdout_uri": hold_manifest.uri,
        "mlops.holdout_sha256": hold_manifest.sha256,
        "mlops.holdout_manifest_version": str(hold_manifest.version),
        "mlops.code_version": tracking.code_version(),
        "mlops.ds": ds,
    }


def _log_params(
    spec: PipelineSpec,
    pipe: Any,
    params: dict[str, Any],
    n_train: int,
    n_holdout: int,
    numeric: list[str],
    categorical: list[str],
    pos: Any,
) -> None:
    """The run's params, and (binary) the decision threshold tag."""
    import mlflow

    from mlops_core.model import threshold

    # one truth: the threshold the saved model object applies (card, gate log, Models view read it)
    chosen_threshold = threshold.of_model(pipe)
    if spec.problem_type == "binary":
        mlflow.set_tag(
            threshold.TAG, threshold.DEFAULT if chosen_threshold is None else str(chosen_threshold)
        )
    mlflow.log_params(
        {
            "family": spec.model.family,
            "seed": spec.model.seed,
            **{f"param.{k}": v for k, v in params.items()},
            "n_train": n_train,
            "n_holdout": n_holdout,
            "n_numeric": len(numeric),
            "n_categorical": len(categorical),
            "holdout_strategy": spec.evaluation.holdout.strategy,
            "positive_class": pos,
            "threshold": threshold.DEFAULT if chosen_threshold is None else chosen_threshold,
        }
    )


def _log_inputs(
    spec: PipelineSpec,
    ds: str,
    raw: pd.DataFrame,
    raw_uri: str,
    raw_manifest: Manifest,
    hold_df: pd.DataFrame,
    hold_manifest: Manifest,
) -> None:
    """The raw and the holdout partitions as the run's MLflow inputs (name, digest, manifest version)."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    from mlops_core.data.lineage import register_lake_source

    register_lake_source()  # before the inputs: lineage for abfs://, gcs://... URIs
    mlflow.log_input(
        from_pandas(
            raw,
            source=raw_uri,
            targets=spec.target,
            name=f"{spec.name}-raw-{ds}",
            digest=raw_manifest.sha256[:16],
        ),
        context="training",
        tags={"sha256": raw_manifest.sha256, "manifest_version": str(raw_manifest.version)},
    )
    mlflow.log_input(
        from_pandas(
            hold_df,
            source=hold_manifest.uri,
            targets=spec.target,
            name=f"{spec.name}-holdout-{ds}",
            digest=hold_manifest.sha256[:16],
        ),
        context="holdout",
        tags={"sha256": hold_manifest.sha256, "manifest_version": str(hold_manifest.version)},
    )


def _log_model(spec: PipelineSpec, pipe: Any, X: pd.DataFrame) -> str:
    """Log the fitted pipeline as the run's model (signature, example, pinned requirements); its URI."""
    import mlflow
    from mlflow.models import infer_signature

    from mlops_core.runs import tracking

    example = X.head(5)
    with tracking.own_fresh_model():  # log_model loads the copy it just wrote from ``pipe``
        info = mlflow.sklearn.log_model(
            sk_model=pipe,
            name="model",
            signature=infer_signature(example, pipe.predict(example)),
            input_example=example,
            pip_requirements=pip_requirements(spec),
            **_serialization(pipe, spec.model.allow_pickle),
        )
    return str(info.model_uri)
