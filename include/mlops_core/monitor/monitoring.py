"""Daily monitoring: drift of a day's data against the champion's training snapshot, its history,
and the policy that decides when drift should retrain the model.

Outputs per monitored day ``ds`` (re-runs overwrite, never append):

- ``<lake>/<name>/reports/drift/ds=<ds>/drift.json`` (verdicts, always), ``report.html`` and
  ``report.json`` (the Evidently report and its snapshot JSON: on drifted days by default, see
  ``monitoring.report``);
- ``<lake>/<name>/drift_history/ds=<ds>/data.parquet``: one row per column with the day's totals;
- an MLflow run per day in experiment ``mlops/<name>/monitoring`` with metrics ``drift_share``,
  ``n_drifted``, ``rows`` and the HTML report (when built) as an artifact.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
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
from mlops_core.runs import registry

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import MonitoringSpec, PipelineSpec

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
    raw, _, _ = registry.champion_artifact(spec.registered_model_name, "feature_importance.json")
    if raw is None:
        return {}
    return {str(k): max(float(v), 0.0) for k, v in raw.items() if isinstance(v, int | float)}


def champion_baseline(spec: PipelineSpec) -> Any:
    """The champion's :class:`mlops_core.data.drift.Baseline` (None: calibration off, or none recorded)."""
    from mlops_core.data import drift

    if not spec.monitoring.calibration.enabled:
        return None
    raw, _, _ = registry.champion_artifact(spec.registered_model_name, BASELINE_ARTIFACT)
    if raw is not None and not raw.get("calibrated"):
        log.info("%s: no drift baseline (%s); the configured thresholds apply", spec.name, raw.get("reason"))
    return drift.Baseline.from_dict(raw or {})


def _mlflow_day_run(spec: PipelineSpec, ds: str, result: Any, html: str | None, tags: dict[str, str]) -> str:
    """Log (or re-log, on a re-run) the day's metrics and report to one MLflow run per day."""
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
    share_threshold = baseline.share_threshold(m.drift_share) if baseline is not None else m.drift_share
    output = prediction_drift(
        spec, lake_root, ds, floor=baseline.floors.get(drift.PREDICTION) if baseline is not None else None
    )
    drifted, _ = day_drifted(m, result.drift_share, share_threshold, result.critical_drifted, output)
    html: str | None = None
    files: dict[str, bytes] = {}
    if report or m.report == "always" or (m.report == "drifted" and drifted):
        html, snapshot = drift.evidently_report(reference, current, result, sample_size=m.sample_size)
        files = {"report.html": html.encode(), "report.json": json.dumps(snapshot, default=str).encode()}
    else:
        log.info(
            "%s ds=%s: no Evidently report (monitoring.report is %r and the day did not drift); "
            "trigger the run with the 'report' param to build one",
            spec.name,
            ds,
            m.report,
        )
    summary = {
        **result.summary(),
        "ds": ds,
        "reference_uri": ref_uri,
        "reference_version": ref_version,
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
        "prediction_drift": output,
    }
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
    run_id = _mlflow_day_run(spec, ds, result, html, tags or {})
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
    }


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


@dataclass
class PolicyDecision:
    fire: bool
    reasons: list[str]
    ds: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # what would retrain: "drift", "performance" (model decay on realized labels) or both
    trigger: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_drifted(
    cfg: MonitoringSpec,
    share: float,
    share_threshold: float,
    critical: list[str],
    prediction: dict[str, Any] | None,
) -> tuple[bool, list[str]]:
    """Whether one monitored day drifted, and why (pure): the (weighted) share reached the share
    threshold, a critical column drifted, or, with ``prediction_drift: policy``, the model's
    output drifted against its holdout predictions. What :func:`check` records and
    :func:`decide` reads back, and what the drift benchmark measures."""
    why = []
    if share >= share_threshold:
        why.append(f"drift share {share:.2f} >= {share_threshold:g}")
    if critical:
        why.append(f"critical column(s) drifted: {', '.join(critical)}")
    if cfg.prediction_drift == "policy" and isinstance(prediction, dict) and prediction.get("drifted"):
        why.append("predictions drifted")
    return bool(why), why


def _prediction_note(out: Any, policy: bool) -> str:
    stat = f"p={out['p_value']:.3g}" if out.get("p_value") is not None else f"{out['statistic']:.3g}"
    acts = "counts in the policy" if policy else "reported; prediction_drift: report"
    return (
        f"prediction drift ({out['method']} {stat} against the champion's holdout predictions): "
        f"{'drifted' if out.get('drifted') else 'stable'} ({acts})"
    )


def _day_reason(cfg: MonitoringSpec, d: str, row: dict[str, Any]) -> tuple[bool, str]:
    rows, share = int(row["rows"] or 0), float(row["drift_share"] or 0.0)
    found = row.get("critical_drifted")
    critical = [str(c) for c in found] if isinstance(found, list | tuple) else []
    recorded = row.get("share_threshold")
    threshold = cfg.drift_share if recorded is None or math.isnan(float(recorded)) else float(recorded)
    out = row.get("prediction_drift")
    out = out if isinstance(out, dict) and out.get("method") else None
    drifted, _ = day_drifted(cfg, share, threshold, critical, out)
    enough = rows >= cfg.min_rows
    why = f"critical column(s) drifted: {', '.join(critical)}; " if critical else ""
    calibrated = (
        f" (the window's own variability; drift_share {cfg.drift_share:g})"
        if threshold > cfg.drift_share
        else ""
    )
    reason = (
        f"{d}: {why}drift share {share:.2f} {'>=' if share >= threshold else '<'} {threshold:g}{calibrated}, "
        f"{rows} rows {'>=' if enough else '<'} min_rows {cfg.min_rows}"
    )
    if out is not None:
        reason += "; " + _prediction_note(out, cfg.prediction_drift == "policy")
    return enough and drifted, reason


def decide(
    cfg: MonitoringSpec,
    days: pd.DataFrame,
    ds: str,
    *,
    last_training: date | None,
    is_backfill: bool,
    decay: Any = None,
    last_promotion: date | None = None,
) -> PolicyDecision:
    """Apply the policy for day ``ds`` (pure: no I/O): the drift streak OR the decay verdict
    (:class:`mlops_core.monitor.feedback.DecayVerdict`, when the pipeline has ``feedback``), then the
    cooldown and the backfill rule, which hold both.

    The cooldown counts from ``last_promotion`` (the current champion's training day) with
    ``cooldown_from: promotion``, from ``last_training`` (the last attempt) with ``attempt``; with
    no champion yet, from the last attempt either way.
    """
    day = date.fromisoformat(ds[:10])
    wanted = [(day - timedelta(days=i)).isoformat() for i in range(cfg.consecutive_days)]
    by_day = {str(r["ds"]): r for r in days.to_dict("records")} if len(days) else {}
    reasons, ok = [], True
    for d in wanted:
        row = by_day.get(d)
        if row is None:
            ok = False
            reasons.append(
                f"{d}: not monitored: no data (its rows have not arrived or its run has not finished); "
                f"no data is not 'no drift', and the policy needs {cfg.consecutive_days} consecutive monitored day(s)"
            )
            continue
        drifted, reason = _day_reason(cfg, d, row)
        ok &= drifted
        reasons.append(reason)
    drift_fires = ok
    decay_fires = bool(decay is not None and decay.fire)
    if decay is not None:
        reasons += decay.reasons
    ok = drift_fires or decay_fires
    trigger = "+".join(t for t, on in (("drift", drift_fires), ("performance", decay_fires)) if on) or None
    cooling = _cooldown(cfg, day, last_training, last_promotion)
    if cooling:
        ok = False
        reasons.append(cooling)
    if is_backfill and not cfg.retrain_on_backfill:
        ok = False
        reasons.append(
            "backfill run: history filled, retraining not triggered (monitoring.retrain_on_backfill is false)"
        )
    today = by_day.get(day.isoformat(), {})
    evidence: dict[str, Any] = {
        "ds": day.isoformat(),
        "drift_share": today.get("drift_share"),
        "share_threshold": today.get("share_threshold"),
        "rows": today.get("rows"),
    }
    if decay is not None:
        evidence["performance"] = decay.evidence
    return PolicyDecision(ok, reasons, day.isoformat(), evidence, trigger if ok else None)


def _cooldown(cfg: MonitoringSpec, day: date, last_training: date | None, last_promotion: date | None) -> str:
    """Why the cooldown holds the day ("" when it does not)."""
    since: date | None = last_training
    what = "the last training attempt"
    if cfg.cooldown_from == "promotion" and last_promotion is not None:
        since, what = last_promotion, "the champion's training (last promotion)"
    if since is None or (day - since).days >= cfg.cooldown_days:
        return ""
    return (
        f"cooldown: {what} on {since}, {(day - since).days} day(s) ago < {cfg.cooldown_days} "
        f"(monitoring.cooldown_from: {cfg.cooldown_from})"
    )


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
        from mlops_core.monitor import feedback

        decay = feedback.decide(spec, feedback.history(spec, lake_root), ds)
    return decide(
        spec.monitoring,
        history(spec, lake_root),
        ds,
        last_training=last_training_ds(spec),
        is_backfill=is_backfill,
        decay=decay,
        last_promotion=last_promotion_ds(spec) if spec.monitoring.cooldown_from == "promotion" else None,
    )
