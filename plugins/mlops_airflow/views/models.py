"""The "Models" view in Airflow's UI, and the lake reports the extra links open.

Served by the api-server itself (Airflow 3 plugin ``fastapi_apps``, under ``/mlops``), so there is
no extra server to run. Every route needs a signed-in Airflow user (the UI's JWT cookie or a
bearer token) and shows only the pipelines whose training DAG that user may read:

- ``/mlops/models``: per pipeline, the champion history (versions, gate decisions, who forced or
  approved, rollbacks), the primary holdout metric over versions, and the drift share and the
  realized metric over days, as inline SVG charts (no JavaScript, every value escaped).
- ``/mlops/reports/<pipeline>?path=...``: a GX validation page, an Evidently report or a model
  card (the newest published version of that partition's file, its digest checked) from that
  pipeline's own lake prefix (a fixed set of file names, no ``..``), sent with
  ``Content-Security-Policy: sandbox`` so a report's scripts run in an opaque origin that cannot
  read Airflow's cookies or call its API.

Data comes from the MLflow registry and the lake, read at request time (nothing is cached).
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

MAX_VERSIONS = 50
REPORT_FILES = {
    "result.html": "text/html",
    "report.html": "text/html",
    "model_card.html": "text/html",
    "result.json": "application/json",
    "drift.json": "application/json",
    "report.json": "application/json",
    "model_card.md": "text/markdown",
}
# Only Airflow's own UI may frame these pages (the nav view embeds /mlops/models): no other site
# can overlay them (clickjacking).
FRAME_ANCESTORS = "frame-ancestors 'self'"
SANDBOX = (
    "sandbox allow-scripts; default-src 'self' 'unsafe-inline' data: blob: https://cdn.jsdelivr.net; "
    + FRAME_ANCESTORS
)
# The Models page: inline SVG and one inline stylesheet, no script, no form, nothing fetched.
PAGE_CSP = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; {FRAME_ANCESTORS}"


def pipelines_folder() -> Path:
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")) / "pipelines"


def load_pipelines() -> list[PipelineSpec]:
    """Every valid pipeline of the DAG folder (invalid ones are the import errors' business)."""
    from mlops_core.spec import SpecError, load_spec

    specs = []
    for path in sorted(pipelines_folder().glob("*.y*ml")):
        try:
            specs.append(load_spec(path))
        except SpecError:
            continue
    return specs


# --- data ---------------------------------------------------------------------------------------


def _ts(ms: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M") if ms else ""


def champion_history(spec: PipelineSpec) -> dict[str, Any]:
    """The newest :data:`MAX_VERSIONS` versions with their decisions and primary holdout metric."""
    from mlops_core.model import threshold
    from mlops_core.runs import registry, tracking

    c = tracking.configure()
    name = spec.registered_model_name
    metric = f"holdout_{spec.evaluation.primary_metric}"
    try:
        found = c.search_model_versions(f"name='{name}'", max_results=1000)
    except Exception as err:
        if registry.is_missing(err):
            return {"champion": None, "versions": [], "metric": spec.evaluation.primary_metric}
        raise
    versions = sorted(found, key=lambda mv: int(mv.version))[-MAX_VERSIONS:]
    champion = registry.alias_version(name, registry.CHAMPION)
    rows = []
    for mv in versions:
        tags = mv.tags or {}
        value, applied, run = None, tags.get(threshold.TAG), None
        if mv.run_id:
            try:
                run = c.get_run(mv.run_id)
            except Exception:  # a deleted run: the row stays, without its metric
                run = None
            if run is not None:
                value = run.data.metrics.get(metric)
                # the training run's tag: read off the saved model object when it was trained
                applied = run.data.tags.get(threshold.TAG) or applied
        rows.append(
            {
                "version": str(mv.version),
                "created": _ts(mv.creation_timestamp),
                "gate": tags.get(registry.GATE_TAG, ""),
                "reasons": tags.get(registry.REASONS_TAG, ""),
                "forced_by": tags.get("mlops.forced_by", ""),
                "force_reason": tags.get("mlops.force_reason", ""),
                "approval": tags.get("mlops.approval", ""),
                "approved_by": tags.get("mlops.approved_by", ""),
                "promoted": tags.get("mlops.promoted") == "true",
                "rolled_back": tags.get("mlops.rolled_back") == "true",
                "superseded": registry.SUPERSEDED_TAG in tags,
                "shadow": tags.get("mlops.shadow_verdict", ""),  # deployment.shadow's verdict, one line
                # deployment.challenger: live | promoted | rolled_back | replaced (mlops.challenger)
                "challenger": tags.get("mlops.challenger", ""),
                "champion": str(mv.version) == champion,
                "metric": value,
                "threshold": _threshold_text(spec, applied, dict(run.data.params) if run is not None else {}),
            }
        )
    return {"champion": champion, "versions": rows, "metric": spec.evaluation.primary_metric}


def _threshold_text(spec: PipelineSpec, tag: str | None, params: dict[str, str]) -> str:
    """The decision threshold a version's saved model applies ("" for non-binary problems)."""
    from mlops_core.model import threshold

    if spec.problem_type != "binary":
        return ""
    if tag is None:
        return "not recorded"
    return threshold.describe(threshold.parse(tag), params.get("positive_class"))


def day_history(spec: PipelineSpec) -> dict[str, list[dict[str, Any]]]:
    """Drift share per monitored day and realized metric per prediction day, from the lake."""
    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core.base import settings
    from mlops_core.monitor import feedback, monitoring

    with cloud_context(spec):
        lake = settings.lake_root()
        drift = monitoring.history(spec, lake).to_dict("records") if spec.monitoring.enabled else []
        realized = feedback.history(spec, lake) if spec.feedback is not None else []
    return {"drift": drift, "realized": realized}


# --- rendering (pure: tested without a server) --------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _bounds(
    points: list[tuple[str, float | None]],
    band: list[tuple[float | None, float | None]] | None,
    threshold: float | None,
) -> tuple[float, float]:
    every = [v for _, v in points if v is not None] + [
        b for pair in band or [] for b in pair if b is not None
    ]
    if threshold is not None:
        every.append(threshold)
    lo, hi = min(every), max(every)
    return (lo - 0.5, hi + 0.5) if hi == lo else (lo, hi)


def line_chart(
    points: list[tuple[str, float | None]],
    *,
    title: str,
    threshold: float | None = None,
    band: list[tuple[float | None, float | None]] | None = None,
    width: int = 560,
    height: int = 180,
) -> str:
    """An inline SVG line chart of ``(label, value)`` points, with an optional threshold and band."""
    if not any(v is not None for _, v in points):
        return f'<p class="empty">{esc(title)}: no data yet</p>'
    lo, hi = _bounds(points, band, threshold)
    pad_l, pad_r, pad_t, pad_b = 48, 12, 24, 28
    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * (i / n if len(points) > 1 else 0.5)

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{pad_l}" y="14" class="t">{esc(title)}</text>',
        f'<text x="4" y="{y(hi) + 4:.1f}" class="a">{hi:.3g}</text>',
        f'<text x="4" y="{y(lo) + 4:.1f}" class="a">{lo:.3g}</text>',
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" class="ax"/>',
    ]
    if band:
        top = [(x(i), y(h)) for i, (_, h) in enumerate(band) if h is not None]
        bottom = [(x(i), y(lw)) for i, (lw, _) in enumerate(band) if lw is not None]
        if top and bottom:
            poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in top + bottom[::-1])
            parts.append(f'<polygon points="{poly}" class="band"/>')
    if threshold is not None:
        parts.append(
            f'<line x1="{pad_l}" y1="{y(threshold):.1f}" x2="{width - pad_r}" y2="{y(threshold):.1f}" class="thr"/>'
        )
    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points) if v is not None)
    parts.append(f'<polyline points="{path}" class="line"/>')
    for i, (label, v) in enumerate(points):
        if v is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3"><title>{esc(label)}: {v:.4g}</title></circle>'
            )
    for i in sorted({0, len(points) - 1}):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" class="a" text-anchor="middle">{esc(points[i][0])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _decision(row: dict[str, Any]) -> str:
    bits = [row["gate"] or "not judged"]
    if row["forced_by"]:
        bits.append(f"forced by {row['forced_by']}: {row['force_reason']}")
    if row["approval"]:
        bits.append(f"{row['approval']} by {row['approved_by'] or '?'}")
    if row["rolled_back"]:
        bits.append("rolled back")
    if row["superseded"]:
        bits.append("superseded")
    if row.get("shadow"):
        bits.append(f"shadow {row['shadow']}")
    if row.get("challenger"):
        bits.append(f"challenger {row['challenger'].replace('_', ' ')}")
    return "; ".join(bits)


def _version_row(r: dict[str, Any]) -> str:
    value = f"{r['metric']:.4f}" if isinstance(r["metric"], float) else ""
    star = " ★" if r["champion"] else ""
    css = "champ" if r["champion"] else ""
    return (
        f'<tr class="{css}"><td>v{esc(r["version"])}{star}</td><td>{esc(r["created"])}</td>'
        f"<td>{esc(_decision(r))}</td><td>{esc(value)}</td><td>{esc(r.get('threshold', ''))}</td>"
        f'<td class="why">{esc(r["reasons"][:400])}</td></tr>'
    )


def render_pipeline(
    spec: PipelineSpec, history: dict[str, Any], days: dict[str, list[dict[str, Any]]]
) -> str:
    metric = history["metric"]
    versions = history["versions"]
    rows = "".join(_version_row(r) for r in reversed(versions))
    floor = spec.evaluation.floors.get(metric)
    metric_chart = line_chart(
        [(f"v{r['version']}", r["metric"]) for r in versions],
        title=f"holdout {metric} by version",
        threshold=floor,
    )
    drift = days["drift"]
    drift_chart = line_chart(
        [(str(d.get("ds")), d.get("drift_share")) for d in drift],
        title="drift share by day",
        threshold=spec.monitoring.drift_share,
    )
    realized = days["realized"]
    realized_chart = (
        line_chart(
            [(str(d.get("ds")), d.get("value")) for d in realized],
            title=f"realized {realized[-1].get('metric', '') if realized else ''} by prediction day",
            band=[(d.get("low"), d.get("high")) for d in realized],
            threshold=realized[-1].get("floor") if realized else None,
        )
        if spec.feedback is not None
        else '<p class="empty">no feedback section: realized performance is not tracked</p>'
    )
    champion = f"v{history['champion']}" if history["champion"] else "none yet"
    return (
        f'<section id="{esc(spec.name)}"><h2>{esc(spec.name)} <small>champion {esc(champion)} · '
        f"{esc(spec.problem_type)} · {esc(spec.model.family)} · cloud {esc(spec.cloud)}</small></h2>"
        f"<p>{esc(spec.description)}</p>"
        f'<div class="charts">{metric_chart}{drift_chart}{realized_chart}</div>'
        f"<table><thead><tr><th>version</th><th>registered (UTC)</th><th>decision</th><th>{esc(metric)}</th>"
        f"<th>decision threshold</th><th>gate reasons</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=6>no version yet</td></tr>'}"
        "</tbody></table></section>"
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#1b1f24}h1{font-size:20px}
h2{font-size:17px;margin-top:28px}h2 small{font-weight:normal;color:#57606a;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin-top:8px}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
tr.champ{background:#dafbe1}td.why{max-width:520px;color:#57606a}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{border:1px solid #d0d7de;border-radius:6px;background:#fff}.t{font-size:12px;font-weight:600}.a{font-size:10px;fill:#57606a}
.ax{stroke:#d0d7de}.line{fill:none;stroke:#0969da;stroke-width:2}circle{fill:#0969da}.thr{stroke:#cf222e;stroke-dasharray:4 3}
.band{fill:#0969da;opacity:.15}.empty{color:#57606a;font-size:13px}.err{color:#cf222e}
"""


def render_page(sections: list[str], user: str) -> str:
    body = "".join(sections) or "<p>No pipeline you may read. Ask for read access to its DAGs.</p>"
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Models</title>'
        f"<style>{STYLE}</style></head><body><h1>Models</h1>"
        f'<p class="empty">signed in as {esc(user)} · champion history, gate decisions, drift and realized '
        f"performance, read from the registry and the lake now</p>{body}</body></html>"
    )


def report_path(spec_name: str, path: str) -> str:
    """The relative lake path of a report, or ValueError (only known report files, no climbing)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise ValueError(f"not a report path of {spec_name}: {path!r}")
    if parts[-1] not in REPORT_FILES:
        raise ValueError(f"{parts[-1]!r} is not a report file; served: {', '.join(sorted(REPORT_FILES))}")
    return path


# --- the app --------------------------------------------------------------------------------------


def _allowed(user: Any, spec: PipelineSpec) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method="GET", details=DagDetails(id=f"{spec.name}_training"), user=user
        )
    )


def models_page(user: Any) -> str:
    """The page of every pipeline ``user`` may see; one unreadable pipeline does not hide the others."""
    sections = []
    for spec in load_pipelines():
        if not _allowed(user, spec):
            continue
        try:
            sections.append(render_pipeline(spec, champion_history(spec), day_history(spec)))
        except Exception as err:  # one unreadable pipeline must not hide the others
            log.exception("models view: %s", spec.name)
            sections.append(
                f'<section><h2>{esc(spec.name)}</h2><p class="err">could not read: '
                f"{esc(type(err).__name__)}: {esc(str(err)[:300])}</p></section>"
            )
    name = getattr(user, "get_name", lambda: "")() or ""
    return render_page(sections, name)


def report_file(pipeline: str, path: str, user: Any) -> tuple[bytes, str]:
    """(content, media type) of the report ``path`` of ``pipeline``, read from the lake in the
    pipeline's cloud profile; ``HTTPException`` 404 (no such pipeline for ``user``, no such
    report) or 400 (a path that is not a report's)."""
    from fastapi import HTTPException

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core.base import settings
    from mlops_core.data import filesystems, storage

    spec = next((s for s in load_pipelines() if s.name == pipeline), None)
    if spec is None or not _allowed(user, spec):
        raise HTTPException(status_code=404, detail="no such pipeline")
    try:
        rel = report_path(spec.name, path)
    except ValueError as err:
        raise HTTPException(status_code=400, detail=str(err)) from err
    with cloud_context(spec):
        try:  # the newest published version of that partition's file, digest checked
            body = storage.read_file(filesystems.join(settings.lake_root(), spec.name, rel))
        except FileNotFoundError:
            raise HTTPException(status_code=404, detail="no such report") from None
    return body, REPORT_FILES[rel.rsplit("/", 1)[-1]]


def create_app() -> Any:
    """The FastAPI app Airflow mounts under ``/mlops`` (see :mod:`mlops_airflow.plugin`)."""
    # (defaults, not Annotated[...]: with postponed annotations FastAPI resolves annotation
    # strings in this module's globals, where these function-level imports are not)
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, Query
    from fastapi.responses import HTMLResponse, Response

    app = FastAPI(title="airflow-mlops models", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def security_headers(request: Any, call_next: Any) -> Any:
        # every response, errors (401, 403, 404) included; a report keeps its own sandbox policy
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/models", response_class=HTMLResponse)
    def models(user: Any = Depends(get_user)) -> HTMLResponse:
        return HTMLResponse(models_page(user), headers={"Cache-Control": "no-store"})

    @app.get("/reports/{pipeline}")
    def report(pipeline: str, path: str = Query(max_length=512), user: Any = Depends(get_user)) -> Response:
        body, media_type = report_file(pipeline, path, user)
        headers = {
            "Content-Security-Policy": SANDBOX,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return Response(body, media_type=media_type, headers=headers)

    return app
