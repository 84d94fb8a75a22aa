"""The lifecycle steps as plain functions: what each Airflow operator calls, and what a notebook can call.

Every step reads its inputs by URI and returns a small JSON-able dict (URIs, ids, metrics), never
data. Outputs are keyed by (pipeline, logical date) so a re-run overwrites, never duplicates.
Here: ingest, evaluate, gate, register and what the registry says of them; the release steps
(deploy, smoke test, promote, rollback) are in :mod:`mlops_core.rollout`, batch scoring in
:mod:`mlops_core.scoring`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from mlops_core import feature_stores
from mlops_core.base import settings
from mlops_core.data import sources, storage
from mlops_core.data.errors import SourceDataError
from mlops_core.model.evaluation import Bootstrap, GateDecision
from mlops_core.runs import registry, release, run_artifacts

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.model.metrics import Scored
    from mlops_core.model.slice_report import SliceReport
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory

log = logging.getLogger(__name__)


def check_header(spec: PipelineSpec, columns: list[str], source: str, *, with_target: bool) -> None:
    """Columns the YAML names (features, ids, times, the target for training) must be in the data.

    Checked at ingest, so a typo or a renamed column fails there, naming the columns, instead of
    surfacing later as a confusing training or scoring error.
    """
    f = spec.features
    named = {
        **dict.fromkeys(f.include or [], "features.include"),
        **dict.fromkeys(f.categorical, "features.categorical"),
        **dict.fromkeys(f.id_columns, "features.id_columns"),
        **dict.fromkeys(f.time_columns, "features.time_columns"),
        **({spec.target: "target"} if with_target else {}),
    }
    missing = [f"{name} ({where})" for name, where in named.items() if name not in columns]
    if missing:
        import difflib

        hints = [
            f"{m.split(' ')[0]!r} -> {close[0]!r}?"
            for m in missing
            if (close := difflib.get_close_matches(m.split(" ")[0], columns, n=1))
        ]
        raise SourceDataError(
            f"source {source} has no column(s) {', '.join(missing)}; its header has {columns[:30]}"
            + (f"; did you mean {', '.join(hints)}" if hints else "")
            + ". Fix the names in the pipeline YAML or the data"
        )


def ingest(
    spec: PipelineSpec,
    ds: str,
    lake_root: str,
    *,
    stage: str = "raw",
    lookback_days: int | None = None,
    source_options: dict[str, Any] | None = None,
    lake_options: dict[str, Any] | None = None,
    clients: ClientFactory | None = None,
) -> dict[str, Any]:
    """Source rows for ``ds`` -> ``<lake>/<name>/<stage>/ds=<ds>/data.parquet`` (atomic, with manifest).

    With ``feature_store``, each join (:mod:`mlops_core.data.features`) adds its features as of every
    row's event time before the partition is written; ``clients`` reach SageMaker Feature Store.

    The manifest's ``extra`` holds the source's lineage next to the data's sha256: for a DVC
    source, ``dvc`` (repository, revision, its full commit sha, remote, each file's DVC md5);
    the result carries its summary (``dvc``: commit, and the md5 when one file was read).
    """
    frame, rejected, lineage = sources.read_source_with_lineage(
        spec.source, ds, source_options, lookback_days=lookback_days
    )
    source_uri = settings.redact(settings.expand(spec.source.uri))
    check_header(spec, list(frame.columns), source_uri, with_target=stage == "raw")
    frame, joined = feature_stores.apply(spec, frame, clients=clients, storage_options=source_options)
    manifest = storage.write_partition(
        {"data": frame},
        lake_root,
        spec.name,
        stage,
        ds,
        # the expanded URI lands in the lake: credentials in it (user:pass@, ?sig=) are redacted
        extra={"source_uri": source_uri, "mode": spec.source.partition.mode, **lineage, **joined},
        storage_options=lake_options,
    )
    log.info(
        "ingested %d rows x %d columns into %s (sha256 %s)",
        manifest.rows,
        len(manifest.columns),
        manifest.uri,
        manifest.sha256[:12],
    )
    result = {
        "uri": manifest.uri,
        "rows": manifest.rows,
        "sha256": manifest.sha256,
        "version": manifest.version,  # the manifest version this run wrote (lineage names it)
        "rejected_rows": 0,
    }
    if "dvc" in lineage:  # XCom gets the summary; the manifest has every file
        result["dvc"] = _dvc_summary(lineage["dvc"])
    if len(rejected):
        result |= _quarantine(spec, rejected, lake_root, ds, source_uri, manifest.uri, lineage, lake_options)
    return result


def _dvc_summary(dvc: dict[str, Any]) -> dict[str, Any]:
    """A DVC source's lineage for XCom: repository, revision, commit, remote, and the md5 of one file."""
    files = dvc["files"]
    return {k: dvc[k] for k in ("repo", "rev", "commit", "remote")} | (
        {"md5": files[0]["md5"]} if len(files) == 1 else {"files": len(files)}
    )


def _quarantine(
    spec: PipelineSpec,
    rejected: pd.DataFrame,
    lake_root: str,
    ds: str,
    source_uri: str,
    raw_uri: str,
    lineage: dict[str, Any],
    lake_options: dict[str, Any] | None,
) -> dict[str, Any]:
    """Malformed rows within source.max_rejected_share: quarantined as their text, never coerced."""
    quarantine = storage.write_partition(
        {"data": rejected.astype({"line": "int64"})},
        lake_root,
        spec.name,
        "rejected",
        ds,
        extra={"source_uri": source_uri, "raw_uri": raw_uri, **lineage},
        storage_options=lake_options,
    )
    log.warning(
        "quarantined %d malformed row(s) of %s (within source.max_rejected_share %g) into %s; first: line %d: %s",
        len(rejected),
        source_uri,
        spec.source.max_rejected_share,
        quarantine.uri,
        int(rejected["line"].iloc[0]),
        rejected["reason"].iloc[0],
    )
    return {"rejected_rows": len(rejected), "rejected_uri": quarantine.uri}


def _clean(values: dict[str, float]) -> dict[str, float]:
    return {k: (None if math.isnan(v) else round(float(v), 6)) for k, v in values.items()}  # type: ignore[misc]


def _load_champion(spec: PipelineSpec) -> tuple[Any, str | None]:
    """The champion and its version; (None, None) only when the registry says there is none.

    A registry that cannot answer raises :class:`~mlops_core.runs.registry.RegistryUnavailable`: the
    gate fails closed rather than judging the challenger on floors alone.
    """

    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        return None, None
    return run_artifacts.load_verified(
        spec.registered_model_name, version, allow_pickle=spec.model.allow_pickle
    ), version


def evaluate(spec: PipelineSpec, trained: dict[str, Any], lake_root: str, ds: str) -> dict[str, Any]:
    """Score challenger and champion on the same holdout; metrics + paired bootstrap, logged to MLflow.

    With ``evaluation.slices``, also the slice report (``slices`` in the result, ``slices.json`` and
    ``slice.<slice>.<metric>`` metrics on the run) that the gate judges.
    """
    import pandas as pd

    from mlops_core.model import evaluation, threshold
    from mlops_core.runs import tracking

    tracking.configure()
    hold = storage.read_frame(trained["holdout_uri"])
    if spec.evaluation.slices is not None:  # before any scoring: a missing slice column is a spec error
        from mlops_core.model import slices

        slices.check_columns(spec, list(hold.columns), trained["holdout_uri"])
    X, y = hold.drop(columns=[spec.target]), hold[spec.target].to_numpy()
    pos = trained.get("positive_class")
    # only the model the training run recorded (id, digest), with the types the package allows
    model = run_artifacts.load_trained(
        trained["model_uri"], trained["run_id"], allow_pickle=spec.model.allow_pickle
    )
    challenger = evaluation.score(model, X, spec.problem_type, pos)
    chall_metrics = evaluation.all_metrics(spec, y, challenger, pos)
    champ_model, champ_version = _load_champion(spec)
    frames = {"predictions": pd.DataFrame({"prediction": challenger.pred})}
    champ_metrics, boot, champ_error, champion = None, None, None, None
    if champ_model is not None:
        champ_metrics, boot, champ_error, champion = _score_champion(spec, champ_model, X, y, challenger, pos)
    if champion is not None:
        frames["champion_predictions"] = pd.DataFrame({"prediction": champion.pred})
    report = None
    if spec.evaluation.slices is not None:  # the champion's slices beside the challenger's, for comparison
        report = slices.compute(
            spec, hold, y, challenger, pos, champion=champion, champion_version=champ_version
        )
        log.info("slices: %s", "; ".join(report.violations) or "no violation")
    manifest = storage.write_partition(
        frames, lake_root, spec.name, "evaluation", ds, extra={"run_id": trained["run_id"]}
    )
    _log_evaluation(trained["run_id"], chall_metrics, champ_metrics, boot, report)
    changes = _contract_changes(spec, trained["run_id"], champ_version)
    result = {
        # what the saved model applies, read off the loaded object (the gate log shows it)
        "threshold": threshold.of_model(model) if spec.problem_type == "binary" else None,
        "positive_class": pos,
        "challenger": _clean(chall_metrics),
        "champion": _clean(champ_metrics) if champ_metrics else None,
        "champion_version": champ_version,
        "champion_error": champ_error,
        "bootstrap": boot.__dict__ if boot else None,
        "predictions_uri": manifest.uri,
        "contract_changes": changes,
    }
    if report is not None:
        result["slices"] = report.to_dict()
    # the holdout's calibration, for the estimate monitoring makes before labels (binary)
    result["calibration"] = _check_calibration(spec, trained["run_id"], y, challenger, pos)
    return result


def _check_calibration(
    spec: PipelineSpec, run_id: str, y: Any, challenger: Scored, pos: Any
) -> dict[str, Any] | None:
    """A binary challenger's holdout calibration (:func:`mlops_core.model.calibration.check`), logged to
    its run (``calibration_*`` metrics, ``calibration.json``); its summary (None: not a binary
    classifier with probabilities, or ``monitoring.estimate`` off)."""
    import mlflow
    import numpy as np

    from mlops_core.model import calibration

    est = spec.monitoring.estimate
    if (
        spec.problem_type != "binary"
        or challenger.proba is None
        or not (spec.monitoring.enabled and est.enabled)
    ):
        return None
    y_positive = (np.asarray(y).astype(str) == str(pos)).astype(int)
    result = calibration.check(y_positive, challenger.proba, max_ece=est.max_ece, bins=est.bins)
    result["positive_class"] = str(pos)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(calibration.mlflow_metrics(result))
        mlflow.log_dict(result, calibration.ARTIFACT)
    log.info("holdout calibration: Brier %s, ECE %s; %s", result["brier"], result["ece"], result["reason"])
    return {k: v for k, v in result.items() if k != "calibrator"}


def _score_champion(
    spec: PipelineSpec, model: Any, X: pd.DataFrame, y: Any, challenger: Scored, pos: Any
) -> tuple[dict[str, float] | None, Bootstrap | None, str | None, Scored | None]:
    """(metrics, paired bootstrap against the challenger, error, scores) of the champion on the holdout;
    a champion trained on another schema cannot score these rows: its error, and nothing else."""
    from mlops_core.model import evaluation

    try:
        champion = evaluation.score(model, X, spec.problem_type, pos)
    except Exception as err:  # a champion trained on another schema cannot score these rows
        return None, None, f"{type(err).__name__}: {err}"[:300], None
    champ_metrics = evaluation.all_metrics(spec, y, champion, pos)
    b = spec.evaluation.bootstrap
    boot = evaluation.paired_bootstrap(
        spec.evaluation.primary_metric,
        spec.problem_type,
        y,
        challenger,
        champion,
        positive=pos,
        n_resamples=b.n_resamples,
        confidence=b.confidence,
        seed=b.seed,
    )
    return champ_metrics, boot, None, champion


def _log_evaluation(
    run_id: str,
    chall_metrics: dict[str, float],
    champ_metrics: dict[str, float] | None,
    boot: Bootstrap | None,
    report: SliceReport | None,
) -> None:
    """The holdout metrics of both, the improvement's interval and the slice report, on the training run."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"holdout_{k}": v for k, v in chall_metrics.items() if not math.isnan(v)})
        if champ_metrics:
            mlflow.log_metrics(
                {f"champion_holdout_{k}": v for k, v in champ_metrics.items() if not math.isnan(v)}
            )
        if boot:
            mlflow.log_metrics(
                {"improvement": boot.delta, "improvement_ci_low": boot.low, "improvement_ci_high": boot.high}
            )
        if report is not None:
            mlflow.log_metrics(report.mlflow_metrics())
            mlflow.log_dict(report.to_dict(), "slices.json")


def _contract_changes(spec: PipelineSpec, run_id: str, champion_version: str | None) -> dict[str, Any] | None:
    """What changed from the champion's data contract to the challenger's (None without a champion).

    The challenger's contract was learned afresh on its own window; the difference (new and
    vanished categories, moved ranges, null shares) is evidence for the gate and the model card,
    not a verdict: the gate's metrics decide. Logged, and recorded on the run as ``contract_diff.json``.
    """
    import mlflow

    from mlops_core.data import contract

    if champion_version is None:
        return None
    old, new = run_artifacts.version_contract(spec, champion_version), run_artifacts.run_contract(run_id)
    note = (
        f"champion v{champion_version}'s contract against the one learned on this window"
        if old and new
        else f"not compared: {'the champion' if not old else 'this run'} has no contract.json"
    )
    found = contract.diff(old, new)
    changes = {"against": champion_version, "note": note, "changes": found}
    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(changes, "contract_diff.json")
    log.info(
        "data contract since champion v%s: %s",
        champion_version,
        "; ".join(c["text"] for c in found) or f"no change ({note})",
    )
    return changes


def gate(
    spec: PipelineSpec,
    evaluated: dict[str, Any],
    run_id: str,
    *,
    force: bool = False,
    forced_by: str | None = None,
    force_reason: str | None = None,
) -> GateDecision:
    """Decide, then record the decision on the MLflow run (tag, metric, JSON artifact)."""
    import mlflow

    from mlops_core.model import evaluation
    from mlops_core.runs import tracking

    nan = float("nan")
    decision = evaluation.decide(
        spec,
        {k: (nan if v is None else v) for k, v in evaluated["challenger"].items()},
        evaluated["champion"],
        Bootstrap(**evaluated["bootstrap"]) if evaluated.get("bootstrap") else None,
        champion_version=evaluated.get("champion_version"),
        champion_error=evaluated.get("champion_error"),
        force=force,
        forced_by=forced_by,
        force_reason=force_reason,
        slices=evaluated.get("slices"),
        threshold=evaluated.get("threshold"),
        positive_class=evaluated.get("positive_class"),
    )
    decision.contract_changes = evaluated.get("contract_changes")
    tracking.configure()
    tags = _decision_tags(decision.to_dict())
    # sealed with the release key: a run tag rewritten by any other task no longer matches
    tags[release.GATE_SEAL_TAG] = release.seal(
        "gate", **release.gate_fields(spec.registered_model_name, run_id, tags)
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags(tags)
        mlflow.log_metric("gate_promote", 1.0 if decision.promote else 0.0)
        mlflow.log_dict(decision.to_dict(), "gate_decision.json")
    log.info("%s", decision.describe())
    return decision


def _decision_tags(decision: dict[str, Any]) -> dict[str, str]:
    """What the gate records on the training run, and register copies onto the model version."""
    against = decision.get("champion_version")
    tags = {
        registry.GATE_TAG: str(decision["outcome"]),
        registry.REASONS_TAG: " | ".join(decision["reasons"])[:5000],
        registry.AGAINST_TAG: str(against) if against is not None else registry.NO_CHAMPION,
    }
    if decision.get("forced"):
        tags["mlops.forced_by"] = str(decision.get("forced_by") or "unknown")
        tags["mlops.force_reason"] = str(decision.get("force_reason"))
    return tags


_DECISION_KEYS = (
    registry.GATE_TAG,
    registry.REASONS_TAG,
    registry.AGAINST_TAG,
    "mlops.forced_by",
    "mlops.force_reason",
)
# What the training run trained on and with which code: the version carries it too, so the
# registry alone answers "which data, which commit" (README "What a pipeline becomes", step 6).
_LINEAGE_KEYS = (
    "mlops.raw_uri",
    "mlops.raw_sha256",
    "mlops.raw_manifest_version",
    "mlops.raw_manifest_uri",
    "mlops.holdout_sha256",
    "mlops.holdout_manifest_version",
    "mlops.code_version",
    "mlops.ds",
    "mlops.threshold",  # the decision threshold the saved model applies (the Models view shows it)
)


def _recorded_decision(model: str, run_id: str, decision: dict[str, Any]) -> dict[str, str]:
    """The gate's decision (and the data lineage) as recorded on the training run; the XCom copy
    of the decision must agree with it, and the run's tags must carry the gate's seal
    (:mod:`mlops_core.runs.release`): a decision tag any other task rewrote is refused."""
    try:
        run_tags = registry.client().get_run(run_id).data.tags
    except Exception as err:
        raise registry.unavailable(err, f"reading the gate decision of run {run_id}") from err
    recorded = {k: run_tags[k] for k in _DECISION_KEYS if k in run_tags}
    if registry.GATE_TAG not in recorded:
        raise registry.DecisionRefused(
            f"MLflow run {run_id} has no gate decision (tag {registry.GATE_TAG}); run the gate on it first",
            None,
        )
    if recorded[registry.GATE_TAG] != decision.get("outcome"):
        raise registry.DecisionRefused(
            f"the decision passed in says {decision.get('outcome')!r} but the gate recorded "
            f"{recorded[registry.GATE_TAG]!r} on run {run_id}; refusing to register a decision "
            "that is not bound to this model",
            recorded[registry.GATE_TAG],
        )
    if not release.verify(
        run_tags.get(release.GATE_SEAL_TAG), "gate", **release.gate_fields(model, run_id, recorded)
    ):
        raise registry.DecisionRefused(
            f"the gate decision on MLflow run {run_id} ({recorded[registry.GATE_TAG]!r}) is not sealed "
            f"by the release steps (tag {release.GATE_SEAL_TAG} missing or not matching): it was "
            "written or changed by something else; refusing to register it. Re-run the gate",
            recorded[registry.GATE_TAG],
        )
    return recorded | {k: run_tags[k] for k in _LINEAGE_KEYS if k in run_tags}


def register(
    spec: PipelineSpec,
    trained: dict[str, Any],
    decision: dict[str, Any],
    run_key: str,
    lineage: dict[str, str],
    *,
    lake_root: str | None = None,
) -> dict[str, Any]:
    """Register the model this try trained (once per trained run) with lineage and gate tags.

    The gate tags come from the training run, where the gate recorded them, not from the caller:
    a decision can only be registered on the model it was made for. The artifact digest is
    recorded too and checked again at deploy.

    Then the version's model card is published (:func:`mlops_core.model.modelcard.publish`, to
    ``lake_root``, default the profile's lake). It needs the version, so it comes after it; a
    card that fails raises, and the retried task finds the version by its run key and run id
    (no second version) and publishes the card again. A version tagged ``mlops.model_card``
    therefore always has a whole card.
    """
    from mlops_core.model import modelcard
    from mlops_core.runs import tracking

    tracking.configure()
    tags = {
        **lineage,
        "mlops.pipeline": spec.name,
        "mlops.holdout_uri": trained["holdout_uri"],
        **_recorded_decision(spec.registered_model_name, trained["run_id"], decision),
        # the digest the training run recorded, once the files were checked against it
        registry.DIGEST_TAG: run_artifacts.verify_trained(trained["model_uri"], trained["run_id"]),
    }
    version, created = registry.register(
        spec.registered_model_name, trained["model_uri"], trained["run_id"], run_key, tags
    )
    registry.seal_release(spec.registered_model_name, version, trained["run_id"], tags)
    card = modelcard.publish(spec, version, lake_root)
    return {
        "model_name": spec.registered_model_name,
        "version": version,
        "created": created,
        "run_id": trained["run_id"],
        "outcome": tags[registry.GATE_TAG],
        "evaluated_against": tags[registry.AGAINST_TAG],
        "model_card_uri": card["markdown_uri"],
        "model_card_html_uri": card["html_uri"],
    }


def latest_decision(spec: PipelineSpec) -> dict[str, Any] | None:
    """The gate decision of the pipeline's most recent training run (from its MLflow run)."""
    from mlops_core.runs import tracking

    client = tracking.configure()
    exp = client.get_experiment_by_name(f"mlops/{spec.name}")
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id], "tags.`mlops.gate` != ''", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        return None
    tags = runs[0].data.tags
    return {
        "run_id": runs[0].info.run_id,
        "outcome": tags.get("mlops.gate"),
        "reasons": tags.get("mlops.gate_reasons", "").split(" | "),
        "airflow_run_id": tags.get("airflow.run_id"),
    }


def summary(spec: PipelineSpec) -> dict[str, Any]:
    """Champion, its metrics and last gate decision, for ``make demo`` and people."""
    from mlops_core.runs import tracking

    client = tracking.configure()
    version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
    if version is None:
        return {"model": spec.registered_model_name, "champion": None}
    mv = client.get_model_version(spec.registered_model_name, version)
    run = client.get_run(mv.run_id)
    metrics = {k.removeprefix("holdout_"): v for k, v in run.data.metrics.items() if k.startswith("holdout_")}
    return {
        "model": spec.registered_model_name,
        "champion": version,
        "previous_champion": registry.alias_version(spec.registered_model_name, registry.PREVIOUS),
        "run_id": mv.run_id,
        "metrics": metrics,
        "gate": mv.tags.get("mlops.gate"),
        "gate_reasons": mv.tags.get("mlops.gate_reasons"),
        "tags": dict(mv.tags),
        "latest_decision": latest_decision(spec),
    }
