"""Model cards: what a registered version is for, what it learned from, how it did, who let it through.

:func:`build` reads everything from the registry and the version's training run, nothing from the
caller: the YAML's intended use (description, owner, problem type, target, positive class); the
data and its contract (redacted source URI, partition mode, training day, rows, the lake manifest
versions and sha256 of the raw and holdout partitions, the features from ``features.json``, the
learned contract from ``contract.json``); the holdout metrics of challenger and champion and the
paired-bootstrap interval of the improvement; the decision threshold; slices and gate reasons
(``gate_decision.json``); the approval recorded on the version; the lineage (data hashes, code
version, Airflow dag/run/try, MLflow run, model URI and artifact digest).

:func:`publish` renders it as Markdown, HTML (no script allowed by its CSP) and JSON, writes the
three as one new version of ``<lake>/<name>/model_cards/v<version>/ds=<training day>/`` (the
lake's commit protocol, :func:`mlops_core.data.storage.write_partition`), logs them as artifacts of the
training run and then tags the version ``mlops.model_card`` (the lake partition) and
``mlops.model_card_version`` (its manifest version). The tag is written last: a version that
carries it has a complete card. Publishing again (a retried ``register``, a decision recorded
later) writes a new version of the same partition; a card's content depends only on what the
registry and the run hold, so the same state gives the same card.

Every value comes from the YAML, the run or the data, so every value is escaped: through
:func:`mlops_core.base.html.escape_line` in the page, :func:`mlops_core.base.html.markdown` in the Markdown.
Registry and artifact-store errors raise :class:`~mlops_core.runs.registry.RegistryUnavailable`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mlops_core.base import settings
from mlops_core.data import filesystems, storage
from mlops_core.model.modelcard_render import NOT_RECORDED, ModelCard, json_object
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

CARD_TAG = "mlops.model_card"  # the lake partition that holds the card
CARD_VERSION_TAG = "mlops.model_card_version"  # its manifest version at the last publish
APPROVAL_TAG = "mlops.approval"  # approved | rejected | timed_out
APPROVED_BY_TAG = "mlops.approved_by"
APPROVED_AT_TAG = "mlops.approved_at"
APPROVAL_COMMENT_TAG = "mlops.approval_comment"
SHADOW_VERDICT_TAG = "mlops.shadow_verdict"  # deployment.shadow (mlops_core.shadow)
STAGE = "model_cards"
MARKDOWN, HTML, JSON = "model_card.md", "model_card.html", "model_card.json"
ARTIFACTS = ("features.json", "contract.json", "gate_decision.json")

# Lineage as the training run recorded it (README "What a pipeline becomes", step 3)...
RUN_LINEAGE = (
    "mlops.raw_uri",
    "mlops.raw_manifest_version",
    "mlops.raw_manifest_uri",
    "mlops.raw_sha256",
    "mlops.holdout_uri",
    "mlops.holdout_manifest_version",
    "mlops.holdout_sha256",
    "mlops.code_version",
    "airflow.dag_id",
    "airflow.run_id",
    "airflow.try_number",
    "airflow.logical_date",
)
# ... and the model's identity as register recorded it on the version.
VERSION_LINEAGE = (
    registry.RUN_KEY_TAG,
    registry.MODEL_URI_TAG,
    registry.MODEL_ID_TAG,
    registry.DIGEST_TAG,
)


class ModelCardError(LookupError):
    """There is no such model version to write a card for."""


# ---------------------------------------------------------------------------------------------
# reading: the registry, the run, its artifacts and the lake manifests it names


def _version(name: str, version: str) -> Any:
    try:
        return registry.client().get_model_version(name, str(version))
    except Exception as err:
        if registry.is_missing(err):
            raise ModelCardError(f"model {name!r} has no version {version}: no model card to write") from err
        raise registry.unavailable(err, f"reading {name!r} v{version} for its model card") from err


def _run_and_artifacts(run_id: str, label: str) -> tuple[Any, dict[str, Any], list[str]]:
    """The run and its JSON artifacts; a listing or download error raises (fail closed)."""
    import mlflow

    c = registry.client()
    notes: list[str] = []
    try:
        run = c.get_run(run_id)
        listed = {a.path for a in c.list_artifacts(run_id)}
        texts = {p: mlflow.artifacts.load_text(f"runs:/{run_id}/{p}") for p in ARTIFACTS if p in listed}
    except Exception as err:
        raise registry.unavailable(err, f"reading the training run {run_id} of {label}") from err
    docs: dict[str, Any] = {}
    for path, text in texts.items():
        try:
            doc = json.loads(text)
        except ValueError:
            notes.append(f"{path} of run {run_id} is not valid JSON; left out")
            continue
        if isinstance(doc, dict):
            docs[path] = doc
        else:
            notes.append(f"{path} of run {run_id} is not a JSON object; left out")
    return run, docs, notes


def _manifest(uri: str | None, version: str | None, what: str, notes: list[str]) -> storage.Manifest | None:
    """The lake manifest the lineage names (exactly that version); None, with a note, when it is gone."""
    if not uri or version is None:
        notes.append(f"the run records no {what} partition")
        return None
    if not str(version).isdigit():
        notes.append(f"the {what} manifest version {version!r} is not a number")
        return None
    try:
        return storage.read_manifest(uri, version=int(version))
    except FileNotFoundError:
        notes.append(
            f"{what} manifest version {version} is no longer in the lake (collected after its retention)"
        )
    return None


# ---------------------------------------------------------------------------------------------
# the sections' content


def _intended_use(spec: PipelineSpec) -> dict[str, Any]:
    use: dict[str, Any] = {
        "description": spec.description or NOT_RECORDED,
        "owner": spec.owner,
        "pipeline": spec.name,
        "problem_type": spec.problem_type,
        "target": spec.target,
    }
    if spec.problem_type == "binary":
        use["positive_class"] = spec.positive_class
    return use


def _number(value: str | None) -> int | str | None:
    """A run param (MLflow keeps them as text) as the number it was logged as."""
    return int(value) if value is not None and value.isdigit() else value


def _checked(tags: dict[str, str], manifest: storage.Manifest | None, prefix: str) -> str:
    if manifest is None:
        return "not checked (manifest not readable)"
    if manifest.sha256 == tags.get(f"mlops.{prefix}_sha256"):
        return "matches the lake manifest"
    return f"MISMATCH: the lake manifest says sha256 {manifest.sha256}"


def _data(
    spec: PipelineSpec, tags: dict[str, str], params: dict[str, str], notes: list[str]
) -> dict[str, Any]:
    raw = _manifest(tags.get("mlops.raw_uri"), tags.get("mlops.raw_manifest_version"), "raw", notes)
    hold = _manifest(
        tags.get("mlops.holdout_uri"), tags.get("mlops.holdout_manifest_version"), "holdout", notes
    )
    extra = raw.extra if raw is not None else {}
    part = spec.source.partition
    mode = str(extra.get("mode") or part.mode)
    if mode == "column":
        mode = f"column {part.column} (lookback {part.lookback_days} days)"
    # the URI the rows were read from, as ingest recorded it (redacted again: the lake is not trusted)
    source = extra.get("source_uri") or spec.source.uri
    return {
        "source_uri": settings.redact(str(source)),
        "partition_mode": mode,
        "training_day": tags.get("mlops.ds"),
        "rows_train": _number(params.get("n_train")),
        "rows_holdout": _number(params.get("n_holdout")),
        "rows_raw": raw.rows if raw is not None else None,
        "raw_uri": tags.get("mlops.raw_uri"),
        "raw_manifest_version": tags.get("mlops.raw_manifest_version"),
        "raw_sha256": tags.get("mlops.raw_sha256"),
        "raw_check": _checked(tags, raw, "raw"),
        "holdout_uri": tags.get("mlops.holdout_uri"),
        "holdout_manifest_version": tags.get("mlops.holdout_manifest_version"),
        "holdout_sha256": tags.get("mlops.holdout_sha256"),
        "holdout_check": _checked(tags, hold, "holdout"),
    }


def _features(doc: dict[str, Any] | None) -> dict[str, list[str]] | None:
    if doc is None:
        return None
    lists = {k: doc.get(k) for k in ("numeric", "categorical")}
    return {k: [str(c) for c in v] if isinstance(v, list) else [] for k, v in lists.items()}


def _contract(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    rows = []
    for column, found in json_object(doc.get("columns")).items():
        entry = json_object(found)
        cats = entry.get("categories")
        rows.append(
            {
                "column": str(column),
                "role": "target" if entry.get("target") else "feature",
                "kind": entry.get("kind"),
                "dtype": entry.get("dtype"),
                "null_share": entry.get("null_share"),
                "min": entry.get("min"),
                "max": entry.get("max"),
                "n_categories": entry.get("n_categories"),
                "categories": [str(c) for c in cats] if isinstance(cats, list) else None,
            }
        )
    return {"rows": doc.get("rows"), "columns": rows}


def _threshold(
    spec: PipelineSpec,
    run_tags: dict[str, str],
    params: dict[str, str],
    vtags: dict[str, str],
    gate: dict[str, Any],
) -> Any:
    """The threshold the saved model applies, as training read it off the model object (the run's
    tag; the version's copy, then the gate's record when the run is gone)."""
    from mlops_core.model import threshold

    if spec.problem_type != "binary":
        return None
    tag = run_tags.get(threshold.TAG) or vtags.get(threshold.TAG)
    if tag is None and "threshold" in gate:
        tag = threshold.DEFAULT if gate["threshold"] is None else str(gate["threshold"])
    if tag is None:
        return NOT_RECORDED
    positive = params.get("positive_class") or gate.get("positive_class")
    return threshold.describe(threshold.parse(tag), positive)


def _metrics(
    spec: PipelineSpec, tags: dict[str, str], metrics: dict[str, float], gate: dict[str, Any]
) -> dict[str, Any]:
    def prefixed(prefix: str) -> dict[str, float]:
        return {k.removeprefix(prefix): v for k, v in sorted(metrics.items()) if k.startswith(prefix)}

    boot = json_object(gate.get("bootstrap"))
    improvement = None
    if "improvement" in metrics:
        improvement = {
            "metric": spec.evaluation.primary_metric,
            "delta": metrics["improvement"],
            "low": metrics.get("improvement_ci_low"),
            "high": metrics.get("improvement_ci_high"),
            "confidence": boot.get("confidence"),
            "n_resamples": boot.get("n_resamples"),
        }
    against = tags.get(registry.AGAINST_TAG)
    return {
        "primary_metric": spec.evaluation.primary_metric,
        "challenger": prefixed("holdout_"),
        "champion": prefixed("champion_holdout_") or None,
        "champion_version": None if against in (None, "", registry.NO_CHAMPION) else against,
        "improvement": improvement,
        "threshold": None,  # filled by build() from the run (see _threshold)
    }


def _gate(spec: PipelineSpec, vtags: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
    reasons = doc.get("reasons")
    if not isinstance(reasons, list):
        reasons = [r for r in vtags.get(registry.REASONS_TAG, "").split(" | ") if r]
    floors = json_object(doc.get("floors")) or dict(spec.evaluation.floors)
    return {
        # the registry's word (what deploy re-checks), not the artifact's
        "outcome": vtags.get(registry.GATE_TAG) or NOT_RECORDED,
        "reasons": [str(r) for r in reasons],
        "floors": floors,
        "min_improvement": spec.evaluation.min_improvement,
        "evaluated_against": vtags.get(registry.AGAINST_TAG),
        "forced_by": vtags.get("mlops.forced_by"),
        "force_reason": vtags.get("mlops.force_reason"),
        "contract_changes": _contract_changes(doc.get("contract_changes")),
    }


def _contract_changes(value: Any) -> dict[str, Any] | None:
    """The gate's evidence of what changed in the data contract, as plain text (artifact data is not trusted)."""
    doc = json_object(value)
    if not doc:
        return None
    changes = doc.get("changes")
    rows = [
        [
            str(json_object(c).get("column")),
            str(json_object(c).get("change")),
            str(json_object(c).get("text")),
        ]
        for c in (changes if isinstance(changes, list) else [])
    ]
    return {"against": doc.get("against"), "note": str(doc.get("note") or ""), "rows": rows}


def _approval(spec: PipelineSpec, vtags: dict[str, str]) -> dict[str, Any]:
    """The decision recorded on the version; else pending / not asked / not required."""
    wanted = spec.deployment.approval
    status = vtags.get(APPROVAL_TAG)
    if not status:
        if wanted is None or not wanted.required:
            status = "not required"
        elif vtags.get(registry.GATE_TAG) == "reject":
            status = "not asked (the gate rejected this version)"
        else:
            status = "pending"
    return {
        "status": status,
        "by": vtags.get(APPROVED_BY_TAG),
        "at": vtags.get(APPROVED_AT_TAG),
        "comment": vtags.get(APPROVAL_COMMENT_TAG),
        "assigned_users": list(wanted.assigned_users) if wanted is not None else [],
        "shadow": vtags.get(SHADOW_VERDICT_TAG),  # the shadow deployment's verdict, when it had one
    }


def _lineage(name: str, version: str, mv: Any, run_id: str | None, tags: dict[str, str]) -> dict[str, Any]:
    vtags = dict(mv.tags)
    created = getattr(mv, "creation_timestamp", None)
    return {
        **{k: tags.get(k) for k in RUN_LINEAGE},
        "mlflow.run_id": run_id,
        **{k: vtags.get(k) for k in VERSION_LINEAGE},
        "registered_model_uri": f"models:/{name}/{version}",
        "registered_at": datetime.fromtimestamp(created / 1000, UTC).isoformat() if created else None,
    }


def build(spec: PipelineSpec, name: str, version: str) -> ModelCard:
    """The card of ``name`` v``version``, read from the registry, the training run and the lake.

    :raises ModelCardError: the version does not exist.
    :raises ~mlops_core.runs.registry.RegistryUnavailable: the registry or the artifact store failed.
    """
    mv = _version(name, version)
    vtags = dict(mv.tags)
    run_id = mv.run_id or vtags.get(registry.RUN_ID_TAG)
    notes: list[str] = []
    tags: dict[str, str] = {}
    params: dict[str, str] = {}
    run_metrics: dict[str, float] = {}
    docs: dict[str, Any] = {}
    if run_id:
        run, docs, notes = _run_and_artifacts(run_id, f"{name} v{version}")
        tags, params, run_metrics = dict(run.data.tags), dict(run.data.params), dict(run.data.metrics)
    else:
        notes.append("the version names no training run")
    decision = docs.get("gate_decision.json") or {}
    slices = decision.get("slices")
    return ModelCard(
        name=name,
        version=str(version),
        run_id=run_id,
        intended_use=_intended_use(spec),
        data=_data(spec, tags, params, notes),
        features=_features(docs.get("features.json")),
        contract=_contract(docs.get("contract.json")),
        metrics={
            **_metrics(spec, vtags, run_metrics, decision),
            "threshold": _threshold(spec, tags, params, vtags, decision),
        },
        gate=_gate(spec, vtags, decision),
        approval=_approval(spec, vtags),
        lineage=_lineage(name, str(version), mv, run_id, tags),
        slices=slices if isinstance(slices, dict) and slices else None,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# publishing


def _day(card: ModelCard) -> str:
    """The card's partition key: the training day (stable across re-publishes), else the registration day."""
    for value in (card.data["training_day"], card.lineage["registered_at"]):
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            continue
    return datetime.now(UTC).date().isoformat()


def publish(spec: PipelineSpec, version: str, lake_root: str | None = None) -> dict[str, Any]:
    """Build the card of ``spec``'s model v``version``; write it to the lake and MLflow; tag the version.

    Order: the lake (a new version of ``<lake>/<name>/model_cards/v<version>/ds=<day>/``), the
    run's artifacts (``model_card.md``, ``model_card.html``, ``model_card.json``; only for the newest
    version registered from that run), then the
    version's tags ``mlops.model_card`` / ``mlops.model_card_version``. Any failure raises; calling
    it again is safe (another lake version, the same artifacts overwritten, the tags set again).

    :param spec: the pipeline (its YAML gives the intended use; the rest comes from the registry).
    :param version: the registered version of ``spec.registered_model_name``.
    :param lake_root: the lake (default: the cloud profile's / ``$MLOPS_LAKE``).
    :return: ``uri`` (the lake partition), ``markdown_uri``, ``html_uri``, ``json_uri``,
        ``manifest_version`` and ``artifact_uri`` (the HTML on the run, ``runs:/...``; None without a
        run, or when a newer version registered from the same run holds the run's card).
    """
    name = spec.registered_model_name
    card = build(spec, name, version)
    texts = {MARKDOWN: card.markdown(), HTML: card.html(), JSON: card.to_json()}
    manifest = storage.write_partition(
        {},
        lake_root or settings.lake_root(),
        spec.name,
        f"{STAGE}/v{card.version}",
        _day(card),
        files={k: v.encode() for k, v in texts.items()},
        extra={"model": name, "version": card.version, "run_id": card.run_id},
    )
    c = registry.client()
    try:
        # the run holds the card of the newest version registered from it: publishing an older
        # version's card again (a retry, a re-render) leaves a newer one's in place
        run_id = card.run_id
        on_run = bool(run_id) and int(card.version) >= max(
            int(v.version) for v in c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        )
        if run_id and on_run:
            for path, text in texts.items():
                c.log_text(run_id, text, path)
        c.set_model_version_tag(name, card.version, CARD_TAG, manifest.uri)
        c.set_model_version_tag(name, card.version, CARD_VERSION_TAG, str(manifest.version))
    except Exception as err:
        raise registry.unavailable(err, f"publishing the model card of {name} v{card.version}") from err
    log.info("model card of %s v%s: %s (version %d)", name, card.version, manifest.uri, manifest.version)
    return {
        "uri": manifest.uri,
        "markdown_uri": filesystems.join(manifest.uri, MARKDOWN),
        "html_uri": filesystems.join(manifest.uri, HTML),
        "json_uri": filesystems.join(manifest.uri, JSON),
        "manifest_version": manifest.version,
        "artifact_uri": f"runs:/{card.run_id}/{HTML}" if on_run else None,
    }
