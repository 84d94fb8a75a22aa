"""The text of an alert: its subject line, the e-mail's HTML page and the plain-text message.

What :mod:`mlops_airflow.notifications.alerts` sends, built here from a pipeline's event: every
value escaped (HTML) or flattened (headers), only the package's own Airflow and MLflow URLs made
into links, sizes capped at what SMTP, SNS and Slack accept.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlops_core.spec import PipelineSpec

TITLES: dict[str, str] = {
    "policy_fired": "retraining policy fired",
    "gate_rejected": "gate rejected the challenger",
    "rolled_back": "deployment rolled back",
    "validation_failed": "data validation failed",
    "approval_waiting": "a model version waits for approval",
    "metric_below_floor": "realized metric below its floor",
    "labels_unmatched": "labels match no prediction",
    "task_failed": "task failed",
}

MAX_VALUE_CHARS = 4000  # one fact (an exception text, a list of reasons) in a message
SNS_SUBJECT_CHARS = 99  # SNS: ASCII, no line breaks, fewer than 100 characters
SNS_MESSAGE_BYTES = 250_000  # SNS: 256 KB per message, attributes included

_STYLE = (
    "body{font-family:sans-serif;font-size:14px;color:#222}h2{font-size:17px}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;"
    "vertical-align:top}th{background:#f4f4f4}code,pre{font-family:monospace;white-space:pre-wrap}"
    ".where{color:#666;font-size:12px}"
)


def one_line(text: str, limit: int) -> str:
    """Header-safe: no CR/LF or other control characters (no header injection), at most ``limit``."""
    flat = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 3]
    if " " in cut[limit // 2 :]:  # at a word boundary, when there is one late enough
        cut = cut.rsplit(" ", 1)[0]
    return cut + "..."


def subject_line(spec: PipelineSpec, event: str, subject: str) -> str:
    """``[mlops] <pipeline>: <event> - <subject>`` on one line."""
    return one_line(f"[mlops] {spec.name}: {event} - {subject}", 250)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        text = json.dumps(value, default=str, sort_keys=True)
    elif isinstance(value, list | tuple | set | frozenset):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " ... (truncated)"


def task_where(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Airflow task the alert comes from: dag, run, task, try and the link to its log."""
    ti = (context or {}).get("ti") or (context or {}).get("task_instance")
    if ti is None:
        return {}
    where = {
        "dag": getattr(ti, "dag_id", None),
        "run": getattr(ti, "run_id", None),
        "task": getattr(ti, "task_id", None),
        "try": getattr(ti, "try_number", None),
    }
    try:
        where["log_url"] = ti.log_url
    except Exception:  # a fake or partial task instance; the link is a convenience
        where["log_url"] = None
    return {k: v for k, v in where.items() if v not in (None, "")}


_URL = re.compile(r"https?://[^\s\"'<>@]+")


def _link_bases() -> list[str]:
    """Where the links this package builds point: Airflow's ``[api] base_url`` (task logs, the
    approval page; Airflow's own default when unset) and the MLflow UI (:func:`links.mlflow_ui`)."""
    from airflow.configuration import conf

    from mlops_airflow.links.mlops import mlflow_ui

    bases = [conf.get("api", "base_url", fallback="") or "http://localhost:8080", mlflow_ui() or ""]
    return [b.strip().rstrip("/") for b in bases if _URL.fullmatch(b.strip().rstrip("/"))]


def _is_link(value: Any) -> bool:
    """Only URLs under the package's own bases become links: any other ``http(s)://`` value (a
    column name, a reason, an exception message...) is text, so an alert cannot carry a phishing
    link that looks like the pipeline's."""
    if not (isinstance(value, str) and _URL.fullmatch(value)):
        return False
    return any(value == b or value.startswith((f"{b}/", f"{b}?", f"{b}#")) for b in _link_bases())


def _markdown(text: str) -> str:
    """A little markdown, safely: paragraphs, ``- `` bullets and `code`; everything escaped first."""
    from mlops_core.base.html import escape

    def inline(line: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(line))

    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in block.splitlines() if line.strip()]
        bullets = [line for line in lines if line.lstrip().startswith(("- ", "* "))]
        if lines and len(bullets) == len(lines):
            items = "".join(f"<li>{inline(line.lstrip()[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        elif lines:
            out.append("<p>" + "<br>".join(inline(line) for line in lines) + "</p>")
    return "\n".join(out)


def _cell(value: Any) -> str:
    from mlops_core.base.html import escape

    if _is_link(value):
        return f'<a href="{escape(value)}">{escape(value)}</a>'
    if isinstance(value, list | tuple) and len(value) > 1 and all(isinstance(v, str) for v in value):
        items = "".join(f"<li>{escape(_text(v))}</li>" for v in value[:200])
        more = f"<li>... and {len(value) - 200} more</li>" if len(value) > 200 else ""
        return f"<ul>{items}{more}</ul>"
    return f"<code>{escape(_text(value))}</code>"


def render_html(
    spec: PipelineSpec,
    event: str,
    subject: str,
    body_markdown: str,
    facts: Mapping[str, Any],
    where: Mapping[str, Any],
) -> str:
    """The e-mail body: a standalone page, every value escaped, no script (CSP)."""
    from mlops_core.base.html import document, escape

    rows = "".join(
        f"<tr><th>{escape(key)}</th><td>{_cell(value)}</td></tr>"
        for key, value in facts.items()
        if value is not None
    )
    origin = " &middot; ".join(
        f"{escape(key)} {_cell(value)}" for key, value in where.items() if key != "log_url"
    )
    if where.get("log_url"):
        origin += f" &middot; log {_cell(where['log_url'])}"
    body = (
        f"<h2>{escape(spec.name)}: {escape(TITLES.get(event, event))}</h2>\n"
        f"<p><strong>{escape(subject)}</strong></p>\n{_markdown(body_markdown)}\n"
        + (f"<table>{rows}</table>\n" if rows else "")
        + (f'<p class="where">Airflow: {origin}</p>\n' if origin else "")
        + f'<p class="where">event <code>{escape(event)}</code> of pipeline <code>{escape(spec.name)}</code>, '
        "sent by mlops (alerts in the pipeline YAML)</p>"
    )
    return document(subject_line(spec, event, subject), body, style=_STYLE)


def render_text(
    spec: PipelineSpec,
    event: str,
    subject: str,
    body_markdown: str,
    facts: Mapping[str, Any],
    where: Mapping[str, Any],
) -> str:
    """The plain-text message (SNS): the subject, the body, then one ``key: value`` line per fact."""
    lines = [subject_line(spec, event, subject), "", body_markdown.strip(), ""]
    for key, value in facts.items():
        if isinstance(value, list | tuple) and len(value) > 1 and all(isinstance(v, str) for v in value):
            lines += [f"{key}:"] + [f"  - {_text(v)}" for v in value[:200]]
        elif value is not None:
            lines.append(f"{key}: {_text(value)}")
    lines += [f"{key}: {_text(value)}" for key, value in where.items()]
    text = "\n".join(lines).strip() + "\n"
    raw = text.encode("utf-8")
    if len(raw) > SNS_MESSAGE_BYTES:
        text = raw[:SNS_MESSAGE_BYTES].decode("utf-8", "ignore") + "\n... (truncated)\n"
    return text
