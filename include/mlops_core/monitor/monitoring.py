"""Daily monitoring: drift of a day's data against the champion's training snapshot, its history,
and the policy that decides when drift should retrain the model.

Outputs per monitored day ``ds`` (re-runs overwrite, never append):

- ``<lake>/<name>/reports/drift/ds=<ds>/drift.json`` (verdicts, always), ``report.html`` and
  ``report.json`` (the Evidently report and its snapshot JSON: on drifted days by default, see
  ``monitoring.report``);
- ``<lake>/<name>/drift_history/ds=<ds>/data.parquet``: one row per column with the day's totals;
- an MLflow run per day in experiment ``mlops/<name>/monitoring`` with metrics ``drift_share``,
  ``n_drifted``, ``rows`` and the HTML report (when built) as an artifact;
- for a binary classifier, the day's performance estimated before labels
  (:mod:`mlops_core.monitor.estimate`): ``<lake>/<name>/performance_estimate/ds=<ds>`` and metrics
  ``estimated_<metric>`` on the same run.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_core.base import settings
from mlops_core.data import filesystems, storage
from mlops_core.model.baseline import (  # noqa: F401 (monitoring's names for them)
    BASELINE_ARTIFACT,
    _columns,
    _engine_options,
    baseline_date_column,
    training_baseline,
)
from mlops_core.monitor import estimate
from mlops_core.monitor.drift_policy import PolicyDecision, day_drifted, decide
from mlops_core.runs import registry, run_artifacts

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.data.drift import DriftResult
    from mlops_core.data.storage import Manifest
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

HISTORY = "drift_history"
HISTORY_COLUMNS = (
    "ds",
    "drift_share",
    "n_drifted",
    "n_columns",
    "rows",
    "run_type",
    "critical_drifted",
    "prediction_drift",
    "share_threshold",
)


def reference_uri(spec: PipelineSpec) -> str:
    """The reference partition: the champion's training snapshot (its ``mlops.raw_uri`` tag) or a fixed URI."""
    ref = spec.monitoring.reference
    if ref != "champion_training":
        import posixpath

        own = filesystems.join(settings.lake_root(), spec.name) + "/"
        uri = settings.expand(ref)
        head, sep, rest = uri.partition("://")
        normal = f"{head}{sep}{posixpath.normpath(rest)}" if sep else posixpath.normpath(uri)
        if not normal.startswith(own):
            raise LookupError(
                f"monitoring.reference {ref!r} is outside the pipeline's own lake prefix {own}; "
                "a pipeline may only compare against its own partitions"
            )
        return normal
    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        raise LookupError(
            f"{spec.name} has no champion yet, so no reference data: run {spec.name}_training first"
        )
    uri, _ = champion_reference(spec, version)
    return uri


def champion_reference(spec: PipelineSpec, version: str) -> tuple[str, int | None]:
    """The champion's training partition and the exact manifest version it trained on.

    A rewrite of that day's partition after training (a re-run, a backfill) publishes a new
    version; monitoring keeps comparing against what the champion really saw (readable for the
    lake's retention period, see :func:`mlops_core.data.collector.collect_garbage`).
    """
    mv = registry.client().get_model_version(spec.registered_model_name, version)
    tags = registry.client().get_run(str(mv.run_id)).data.tags
    uri = tags.get("mlops.raw_uri")
    if not uri:
        raise LookupError(
            f"champion v{version} of {spec.name} has no mlops.raw_uri lineage tag; set monitoring.reference"
        )
    pinned = tags.get("mlops.raw_manifest_version")
    return str(uri), int(pinned) if pinned and pinned.isdigit() else None


def read_reference(spec: PipelineSpec) -> tuple[pd.DataFrame, str, int | None]:
    """The reference frame, its URI and the manifest version read (pinned for the champion's snapshot)."""
    if spec.monitoring.reference != "champion_training":
        uri = reference_uri(spec)
        return storage.read_frame(uri), uri, None
    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        raise LookupError(
            f"{spec.name} has no champion yet, so no reference data: run {spec.name}_training first"
        )
    uri, pinned = champion_reference(spec, version)
    return storage.read_frame(uri, version=pinned), uri, pinned


def champion_importance(spec: PipelineSpec) -> dict[str, float]:
    """The champion's feature importance per input column (``feature_importance.json`` of its run), or {}.

    {} when there is no champion or it recorded none (equal weights, said in the log); a registry
    outage raises rather than silently changing how the drift share is weighted.
    """
    raw, _, _ = run_artifacts.champion_artifact(spec.registered_model_name, "feature_importance.json")
    if raw is None:
        return {}
    return {str(k): max(float(v), 0.0) for k, v in raw.items() if isinstance(v, int | float)}


def champion_baseline(spec: PipelineSpec) -> Any:
    """The champion's :class:`mlops_core.data.drift.Baseline` (None: calibration off, or none recorded)."""
    from mlops_core.data import drift

    if not spec.monitoring.calibration.enabled:
        return None
    raw, _, _ = run_artifacts.champion_artifact(spec.registered_model_name, BASELINE_ARTIFACT)
    if raw is not None and not raw.get("calibrated"):
        log.info("%s: no drift baseline (%s); the configured thresholds apply", spec.name, raw.get("reason"))
    return drift.Baseline.from_dict(raw or {})


def _mlflow_day_run(
    spec: PipelineSpec,
    ds: str,
    result: Any,
    html: str | None,
    tags: dict[str, str],
    estimated: dict[str, float] | None = None,
) -> str:
    """Log (or re-log, on a re-run) the day's metrics and report to one MLflow run per day
    (``estimated``: the day's performance estimate, ``estimated_<metric>``)."""
    import mlflow

    from mlops_core.runs import tracking

    exp_id = tracking.experiment_id(f"{spec.name}/monitoring")
    client = registry.client()
    found = client.search_runs([exp_id], f"tags.`mlops.ds` = '{ds}'", max_results=1)
    run_id = found[0].info.run_id if found else None
    with mlflow.start_run(
        run_id=run_id, experiment_id=exp_id, run_name=f"monitor-{ds}", tags={**tags, "mlops.ds": ds}
    ) as run:
        mlflow.log_metrics(
            {"drift_share": result.drift_share, "n_drifted": result.n_drifted, "rows": result.rows}
        )
        out = result.extra.get("prediction_drift")
        if out and out.get("statistic") is not None and not math.isnan(out["statistic"]):
            mlflow.log_metrics(
                {"prediction_drift_statistic": out["statistic"], "prediction_drifted": float(out["drifted"])}
            )
        if estimated:
            mlflow.log_metrics(estimated)
        if html is not None:
            mlflow.log_text(html, "drift_report.html")
        mlflow.log_dict(result.summary(), "drift_summary.json")
    return str(run.info.run_id)


def champion_predictions(spec: PipelineSpec) -> tuple[pd.DataFrame, str] | None:
    """The champion's own holdout predictions (the evaluation partition its training run wrote).

    Found through lineage: champion -> its run (``mlops.ds``) -> the version of
    ``evaluation/ds=<ds>`` whose manifest names that run. None when there is none (an older run).
    """
    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        return None
    run_id = str(registry.client().get_model_version(spec.registered_model_name, version).run_id)
    day = registry.client().get_run(run_id).data.tags.get("mlops.ds")
    if not day:
        return None
    uri = storage.partition_uri(settings.lake_root(), spec.name, "evaluation", day)
    for number in reversed(storage.versions(uri)):
        manifest = storage.read_manifest(uri, version=number)
        if manifest.extra.get("run_id") == run_id:
            return storage.read_frame(uri, version=number, name="predictions"), f"{uri}@v{number}"
    return None


def prediction_drift(
    spec: PipelineSpec, lake_root: str, ds: str, *, floor: float | None = None
) -> dict[str, Any] | None:
    """Output drift: today's predictions (``monitor_predictions``) against the champion's holdout predictions.

    Predicted values for regression (``monitoring.numeric_method``), predicted class shares for
    classification (``monitoring.categorical_method``), on the same bounded sample as the inputs.
    None when either side is missing (the score step did not run, or the champion predates this).
    ``floor``: the calibrated statistic the day must also exceed (the model's output varies with
    the calendar in its own training window, :class:`mlops_core.data.drift.Baseline`).
    """
    from mlops_core.data import drift

    try:
        current = storage.read_frame(storage.partition_uri(lake_root, spec.name, "monitor_predictions", ds))
    except FileNotFoundError:
        return None
    found = champion_predictions(spec)
    if found is None or "prediction" not in current.columns:
        return None
    reference, ref_uri = found
    m = spec.monitoring
    numeric = spec.problem_type == "regression"
    frames = [f[["prediction"]].astype(float if numeric else str) for f in (reference, current)]
    result = drift.compute_drift(
        frames[0],
        frames[1],
        ["prediction"] if numeric else [],
        [] if numeric else ["prediction"],
        numeric_method=m.numeric_method,
        categorical_method=m.categorical_method,
        sample_size=m.sample_size,
        seed=m.seed,
        floors={"prediction": floor} if floor is not None else None,
    )
    col = result.columns[0]
    return {**asdict(col), "reference_uri": ref_uri}


def _column_drift(
    spec: PipelineSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    floors: dict[str, float],
) -> DriftResult:
    """Each column's drift by the configured engine, with the critical columns and (importance
    weighting) the champion's feature importances as weights."""
    from mlops_core.data import drift

    m = spec.monitoring
    result = drift.compute_drift(
        reference,
        current,
        numeric,
        categorical,
        **_engine_options(m),
        floors=floors,
    )
    result.critical = [c for c in m.critical_columns if c in numeric + categorical]
    if m.weighting == "importance":
        result.weights = champion_importance(spec)
        if not result.weights:
            log.warning(
                "%s: the champion recorded no feature importance; drift share counts columns equally",
                spec.name,
            )
    return result


def _report_files(
    spec: PipelineSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    ds: str,
    wanted: bool,
) -> tuple[str | None, dict[str, bytes]]:
    """The Evidently report (HTML and its JSON snapshot) when ``wanted``; else none, said in the log."""
    from mlops_core.data import drift_report

    m = spec.monitoring
    if wanted:
        html, snapshot = drift_report.evidently_report(reference, current, result, sample_size=m.sample_size)
        return html, {"report.html": html.encode(), "report.json": json.dumps(snapshot, default=str).encode()}
    log.info(
        "%s ds=%s: no Evidently report (monitoring.report is %r and the day did not drift); "
        "trigger the run with the 'report' param to build one",
        spec.name,
        ds,
        m.report,
    )
    return None, {}


def _day_summary(
    result: DriftResult,
    ds: str,
    reference: tuple[str, int | None],
    current_uri: str,
    run_type: str,
    drifted: bool,
    share_threshold: float,
    floors: dict[str, float],
    baseline: Any,
) -> dict[str, Any]:
    """The day's verdict as drift.json, the history's manifest and the step's result carry it."""
    return {
        **result.summary(),
        "ds": ds,
        "reference_uri": reference[0],
        "reference_version": reference[1],
        "current_uri": current_uri,
        "run_type": run_type,
        # share >= share_threshold, a critical column drifted, or (prediction_drift: policy) the output drifted
        "drifted": drifted,
        "share_threshold": share_threshold,
        "calibrated_columns": sorted(floors),
        "baseline": (
            {"periods": baseline.periods, "share_quantile": round(baseline.share_quantile, 6)}
            if baseline
            else None
        ),
    }


def _write_day(
    spec: PipelineSpec,
    lake_root: str,
    ds: str,
    result: DriftResult,
    summary: dict[str, Any],
    files: dict[str, bytes],
) -> tuple[Manifest, Manifest]:
    """The day's verdicts (and report) under ``reports/drift``, and its rows of the drift history."""
    written = storage.write_partition(
        {},
        lake_root,
        spec.name,
        "reports/drift",
        ds,
        files={
            **files,
            "drift.json": json.dumps(
                {**summary, "columns": [asdict(c) for c in result.columns]}, indent=2, default=str
            ).encode(),
        },
    )
    result.extra["prediction_drift"] = summary["prediction_drift"]
    frame = result.to_frame()
    for key in ("drift_share", "n_drifted", "rows", "run_type"):
        frame[key] = summary[key]
    frame.insert(0, "ds", ds)
    history = storage.write_partition({"data": frame}, lake_root, spec.name, HISTORY, ds, extra=summary)
    return written, history


# long: the signature and docstring take 15 lines; the body is the day's check in the order it is logged
def check(
    spec: PipelineSpec,
    current_uri: str,
    lake_root: str,
    ds: str,
    *,
    run_type: str = "",
    tags: dict[str, str] | None = None,
    report: bool = False,
) -> dict[str, Any]:
    """Drift of the partition at ``current_uri`` against the reference; writes verdicts, history and MLflow run.

    The Evidently report is built as ``monitoring.report`` says, or whenever ``report`` is true
    (a run that asks for it).
    """
    from mlops_core.data import drift
    from mlops_core.runs import tracking

    tracking.configure()
    m = spec.monitoring
    reference, ref_uri, ref_version = read_reference(spec)
    current = storage.read_frame(current_uri)
    numeric, categorical = _columns(spec, reference)
    baseline = champion_baseline(spec) if m.reference == "champion_training" else None
    # a threshold the YAML sets for a column is the user's word: no floor under it
    floors = {c: f for c, f in (baseline.floors if baseline else {}).items() if c not in m.column_thresholds}
    result = _column_drift(spec, reference, current, numeric, categorical, floors)
    share_threshold = baseline.share_threshold(m.drift_share) if baseline is not None else m.drift_share
    output = prediction_drift(
        spec, lake_root, ds, floor=baseline.floors.get(drift.PREDICTION) if baseline is not None else None
    )
    drifted, _ = day_drifted(m, result.drift_share, share_threshold, result.critical_drifted, output)
    html, files = _report_files(
        spec,
        reference,
        current,
        result,
        ds,
        report or m.report == "always" or (m.report == "drifted" and drifted),
    )
    summary = _day_summary(
        result, ds, (ref_uri, ref_version), current_uri, run_type, drifted, share_threshold, floors, baseline
    )
    summary["prediction_drift"] = output
    written, history = _write_day(spec, lake_root, ds, result, summary, files)
    # the day's performance estimated before its labels (binary classifiers): on the same run
    estimated = estimate.run(spec, lake_root, ds)
    run_id = _mlflow_day_run(
        spec, ds, result, html, tags or {}, estimate.mlflow_metrics(estimated) if estimated else None
    )
    log.info(
        "drift %s ds=%s: %d/%d columns drifted (share %.2f, threshold %.2f) %s; report %s",
        spec.name,
        ds,
        result.n_drifted,
        len(result.columns),
        result.drift_share,
        share_threshold,
        result.drifted_columns,
        written.uri,
    )
    return {
        **summary,
        "report_uri": filesystems.join(written.uri, "report.html") if html is not None else None,
        "verdicts_uri": filesystems.join(written.uri, "drift.json"),
        "history_uri": history.uri,
        "mlflow_run_id": run_id,
        "estimate": _estimate_summary(estimated),
    }


def _estimate_summary(day: Any) -> dict[str, Any] | None:
    """The estimate's headline for the step's result (XCom): status, metric, value and interval."""
    if day is None:
        return None
    keys = ("status", "metric", "value", "low", "high", "rows", "calibrated", "decayed", "baseline")
    return {k: getattr(day, k) for k in keys}


def history(spec: PipelineSpec, lake_root: str) -> pd.DataFrame:
    """One row per monitored day (ds, drift_share, n_drifted, n_columns, rows, run_type), oldest first."""
    import pandas as pd

    fs, root = filesystems.filesystem(filesystems.join(lake_root, spec.name, HISTORY))
    days = []
    if fs.exists(root):
        for path in sorted(fs.ls(root, detail=False)):
            name = str(path).rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("ds="):
                continue
            try:
                extra = storage.read_manifest(filesystems.join(lake_root, spec.name, HISTORY, name)).extra
            except FileNotFoundError:
                continue  # an incomplete day is not history
            days.append({k: extra.get(k) for k in HISTORY_COLUMNS})
    return pd.DataFrame(days, columns=list(HISTORY_COLUMNS))


def last_training_ds(spec: PipelineSpec) -> date | None:
    """Data date of the most recent training run of the pipeline (tag ``mlops.ds``), if any."""
    from mlops_core.runs import tracking

    client = tracking.configure()
    exp = client.get_experiment_by_name(f"mlops/{spec.name}")
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], "tags.`mlops.ds` != ''", max_results=500)
    dates = [date.fromisoformat(r.data.tags["mlops.ds"][:10]) for r in runs]
    return max(dates) if dates else None


def last_promotion_ds(spec: PipelineSpec) -> date | None:
    """Data date of the current champion's training run (tag ``mlops.ds``): when the champion last changed.

    A rejected retrain leaves it where it was; a rollback moves it back with the champion.
    """
    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        return None
    run_id = str(registry.client().get_model_version(spec.registered_model_name, version).run_id)
    day = registry.client().get_run(run_id).data.tags.get("mlops.ds")
    return date.fromisoformat(day[:10]) if day else None


def policy(spec: PipelineSpec, lake_root: str, ds: str, *, is_backfill: bool) -> PolicyDecision:
    """The policy on the stored drift (and performance) history and the last training date."""
    decay = None
    if spec.feedback is not None:
        from mlops_core.monitor import decay_policy, feedback

        on_estimate = spec.feedback.decay.on == "estimated"
        days = estimate.history(spec, lake_root) if on_estimate else feedback.history(spec, lake_root)
        decay = decay_policy.decide(spec, days, ds)
    return decide(
        spec.monitoring,
        history(spec, lake_root),
        ds,
        last_training=last_training_ds(spec),
        is_backfill=is_backfill,
        decay=decay,
        last_promotion=last_promotion_ds(spec) if spec.monitoring.cooldown_from == "promotion" else None,
    )
