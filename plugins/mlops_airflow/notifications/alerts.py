"""Alerts: a pipeline's events, sent through the notifiers Airflow's providers ship.

``alerts:`` in the pipeline YAML (:class:`~mlops_core.spec.AlertsSpec`) lists the events a team
wants and where they go. :func:`notify` routes one event, when it is listed, to

* e-mail: the smtp provider's ``SmtpNotifier`` on ``alerts.smtp_conn_id`` (server, login and the
  sender, ``from_email`` in the connection's extra, all come from the connection), to
  ``alerts.email``, with an HTML body built here (:func:`render_html`: every value escaped,
  no script allowed by its Content-Security-Policy);
* SNS: the amazon provider's ``SnsNotifier`` on ``alerts.sns_topic_arn``, through the aws cloud
  profile's connection when the pipeline runs on ``cloud: aws`` (else ``aws_default``), in the
  topic's own region, with the attributes ``pipeline`` and ``event`` for subscription filters.

* Slack: the slack provider's ``SlackWebhookNotifier`` on ``alerts.slack_conn_id`` (an Incoming
  Webhook connection; the text escaped as Slack asks, no link unfurling).

There is no Microsoft Teams provider; an SNS topic or a Slack-compatible webhook reaches it.

The notifiers' ``notify`` is called directly, never their ``__call__``: that would render the
subject and body as Jinja templates, and those carry data values (column names, run ids, exception
text) that nobody vouched for. An alert that cannot be sent never fails, or changes, the step it
reports on: the failure is logged as a warning with the error, and the step goes on.

One helper per event point (the operators call them where the event happens):

==================== ==================================================================
event                raised by
==================== ==================================================================
policy_fired         :func:`notify_policy_fired` (``EmitDriftEventOperator``)
gate_rejected        :func:`notify_gate_rejected` (``GateOperator``)
rolled_back          :func:`notify_rolled_back` (``SmokeTestOperator``, ``DeployOperator``)
validation_failed    :func:`notify_validation_failed` (``ValidateOperator``)
approval_waiting     :func:`notify_approval_waiting` (the approval step)
metric_below_floor   :func:`notify_metric_below_floor` (the performance step)
task_failed          :func:`failure_callback` (every task's ``on_failure_callback``)
==================== ==================================================================
"""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import TYPE_CHECKING, Any, ParamSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mlops_core.data.validation import ValidationReport
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)
P = ParamSpec("P")

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

# Task instances (dag, run, task, map index, try) that sent their own alert in this process: their
# failure callback (run in the same task process) does not repeat it as task_failed.
_ALERTED: dict[tuple[str, ...], str] = {}

_STYLE = (
    "body{font-family:sans-serif;font-size:14px;color:#222}h2{font-size:17px}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;"
    "vertical-align:top}th{background:#f4f4f4}code,pre{font-family:monospace;white-space:pre-wrap}"
    ".where{color:#666;font-size:12px}"
)


def _alert(event: str) -> Callable[[Callable[P, list[str]]], Callable[P, list[str]]]:
    """An event helper: nothing to do (not even its imports) unless ``spec.alerts`` lists ``event``;
    it logs instead of raising, so the step it reports on never changes."""

    def decorate(function: Callable[P, list[str]]) -> Callable[P, list[str]]:
        @functools.wraps(function)
        def safe(*args: P.args, **kwargs: P.kwargs) -> list[str]:
            alerts = getattr(args[0] if args else kwargs.get("spec"), "alerts", None)
            if alerts is None or event not in alerts.events:
                return []
            try:
                return function(*args, **kwargs)
            except Exception as err:
                log.warning("ALERT NOT SENT: %s failed: %s: %s", event, type(err).__name__, err)
                return []

        return safe

    return decorate


# -- the message ----------------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
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
    return _one_line(f"[mlops] {spec.name}: {event} - {subject}", 250)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        text = json.dumps(value, default=str, sort_keys=True)
    elif isinstance(value, list | tuple | set | frozenset):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " ... (truncated)"


def _where(context: Mapping[str, Any] | None) -> dict[str, Any]:
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


def _ti_key(context: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    where = _where(context)
    if not where.get("task"):
        return None
    ti = (context or {}).get("ti") or (context or {}).get("task_instance")
    map_index = getattr(ti, "map_index", -1)
    return tuple(str(where.get(k)) for k in ("dag", "run", "task", "try")) + (str(map_index),)


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


# -- routing --------------------------------------------------------------------------------------


def _current_context() -> Mapping[str, Any]:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # not inside a running task (a test, a notebook)
        return {}


def _sns_connection(spec: PipelineSpec) -> str:
    """The aws cloud profile's connection when the pipeline runs on aws, else ``aws_default``."""
    if spec.cloud == "aws":
        try:
            from mlops_airflow.hooks.cloud import profile_of

            return profile_of(spec).conn_id or "aws_default"
        except Exception as err:
            log.warning("alerts: cannot read the aws cloud profile (%s); SNS uses aws_default", err)
    return "aws_default"


def _channels(
    spec: PipelineSpec,
    event: str,
    subject: str,
    body_markdown: str,
    facts: dict[str, Any],
    where: dict[str, Any],
) -> list[tuple[str, Callable[[], Any]]]:
    """(name, notifier factory) per configured destination; built lazily (provider imports)."""
    alerts = spec.alerts
    assert alerts is not None
    channels: list[tuple[str, Callable[[], Any]]] = []
    if alerts.email:

        def smtp() -> Any:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            return SmtpNotifier(
                to=list(alerts.email),
                subject=subject_line(spec, event, subject),
                html_content=render_html(spec, event, subject, body_markdown, facts, where),
                smtp_conn_id=alerts.smtp_conn_id,
                custom_headers={"X-Mlops-Pipeline": spec.name, "X-Mlops-Event": event},
            )

        channels.append((f"email ({alerts.smtp_conn_id})", smtp))
    if alerts.sns_topic_arn:
        topic = alerts.sns_topic_arn

        def sns() -> Any:
            from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

            return SnsNotifier(
                aws_conn_id=_sns_connection(spec),
                target_arn=topic,
                region_name=topic.split(":")[3],  # a topic is published to in its own region
                subject=_one_line(
                    subject_line(spec, event, subject).encode("ascii", "replace").decode(), SNS_SUBJECT_CHARS
                ),
                message=render_text(spec, event, subject, body_markdown, facts, where),
                message_attributes={"pipeline": spec.name, "event": event},
            )

        channels.append((f"sns ({topic})", sns))
    if alerts.slack_conn_id:
        conn_id = alerts.slack_conn_id

        def slack() -> Any:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            return SlackWebhookNotifier(
                slack_webhook_conn_id=conn_id,
                text=slack_text(render_text(spec, event, subject, body_markdown, facts, where)),
                unfurl_links=False,
                unfurl_media=False,
            )

        channels.append((f"slack ({conn_id})", slack))
    return channels


def slack_text(text: str) -> str:
    """Text Slack shows as written: ``&``, ``<`` and ``>`` escaped as Slack asks, so a value cannot
    make a link (``<http://x|click>``), a mention (``<!channel>``) or a user ping; capped at
    Slack's 40,000 characters."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped if len(escaped) <= 40_000 else escaped[:39_980] + "\n... (truncated)"


def notify(
    spec: PipelineSpec,
    event: str,
    subject: str,
    body_markdown: str,
    context: Mapping[str, Any] | None,
    /,
    **facts: Any,
) -> list[str]:
    """Send ``event`` of ``spec`` to every destination of ``spec.alerts``, if the event is listed.

    :param event: one of :data:`mlops_core.spec.ALERT_EVENTS`.
    :param subject: one line; the e-mail subject becomes ``[mlops] <pipeline>: <event> - <subject>``.
    :param body_markdown: the message: paragraphs, ``- `` bullets and `code` (escaped, then formatted).
    :param context: the task's Airflow context (dag, run, task, try and log link go in the message);
        None: the running task's, if any.
    :param facts: the evidence, one row each (lists of strings become bullet lists; links to
        the package's own Airflow and MLflow URLs become links, any other value is text; None is left out).
    :return: the destinations that accepted the message. Never raises: a destination that fails is
        logged as a warning with its error, and the others are still tried.
    """
    try:
        return _notify(spec, event, subject, body_markdown, context, facts)
    except Exception as err:  # a bug here must not fail the step either
        log.warning("ALERT NOT SENT: %s of %s: %s: %s", event, spec.name, type(err).__name__, err)
        return []


def _notify(
    spec: PipelineSpec,
    event: str,
    subject: str,
    body_markdown: str,
    context: Mapping[str, Any] | None,
    facts: dict[str, Any],
) -> list[str]:
    from mlops_core.spec import ALERT_EVENTS

    if event not in ALERT_EVENTS:
        raise ValueError(f"unknown alert event {event!r}; events: {', '.join(ALERT_EVENTS)}")
    alerts = spec.alerts
    if alerts is None or event not in alerts.events:
        return []
    context = context if context is not None else _current_context()
    where = _where(context)
    sent: list[str] = []
    for name, build in _channels(spec, event, subject, body_markdown, facts, where):
        try:
            # notify(), not __call__: no Jinja rendering of a subject and body that carry data values
            build().notify(dict(context))
        except Exception as err:
            log.warning(
                "ALERT NOT SENT: %s of %s via %s failed: %s: %s (the step goes on)",
                event,
                spec.name,
                name,
                type(err).__name__,
                err,
            )
            continue
        sent.append(name)
        log.info("alert %s of %s sent via %s", event, spec.name, name)
    key = _ti_key(context)
    if sent and key is not None and event != "task_failed":
        if len(_ALERTED) >= 1000:  # a long-lived process (tests, a notebook): forget the oldest
            _ALERTED.pop(next(iter(_ALERTED)))
        _ALERTED[key] = event
    return sent


# -- one helper per event point -------------------------------------------------------------------


@_alert("gate_rejected")
def notify_gate_rejected(
    spec: PipelineSpec, context: Mapping[str, Any] | None, decision: Mapping[str, Any]
) -> list[str]:
    """``gate_rejected``: the champion stays; the reasons, the metrics and the run."""
    metric = decision.get("primary_metric")
    value = (decision.get("challenger") or {}).get(metric)
    shown = f"{value:.4f}" if isinstance(value, int | float) else str(value)
    against = decision.get("champion_version")
    return notify(
        spec,
        "gate_rejected",
        f"challenger rejected ({metric} {shown}), champion {'v' + str(against) if against else 'none'} stays",
        "The gate did not promote the challenger: it is registered for audit (alias `challenger`), "
        "deploy and smoke_test are skipped, and the run stays green.\n\n"
        + "\n".join(f"- {r}" for r in decision.get("reasons") or []),
        context,
        outcome=decision.get("outcome"),
        primary_metric=metric,
        challenger=decision.get("challenger"),
        champion=decision.get("champion"),
        champion_version=against,
        floors=decision.get("floors") or None,
        bootstrap=decision.get("bootstrap"),
        reasons=list(decision.get("reasons") or []),
    )


def _rollback_ok(error: BaseException | str) -> bool | None:
    """True: rolled back; False: the rollback itself failed; None: nothing was rolled back."""
    if isinstance(error, str):
        return None if "rolled back" not in error else "ROLLBACK FAILED" not in error
    from mlops_core.deploy import SmokeTestFailed
    from mlops_core.rollout import RollbackFailed

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RollbackFailed):
            return False
        if isinstance(seen, SmokeTestFailed):
            return True
        seen = seen.__cause__ or seen.__context__
    return True if "rolled back" in str(error) else None


@_alert("rolled_back")
def notify_rolled_back(
    spec: PipelineSpec,
    context: Mapping[str, Any] | None,
    deployment: Mapping[str, Any],
    error: BaseException | str,
    *,
    ok: bool | None = None,
) -> list[str]:
    """``rolled_back``: a deployment undone after a failed smoke test, promotion or platform deploy.

    :param ok: whether the rollback succeeded; None: read from ``error`` (a
        :class:`~mlops_core.rollout.RollbackFailed` in its chain: it failed; a smoke test
        failure: it succeeded; anything else rolled nothing back and sends nothing).
    """
    ok = _rollback_ok(error) if ok is None else ok
    if ok is None:
        return []
    version, previous = deployment.get("version"), deployment.get("previous_version")
    restored = f"v{previous}" if previous else "no champion (first deploy)"
    if ok:
        subject = f"v{version} rolled back, champion restored to {restored}"
        body = f"The deployment of v{version} failed and was rolled back: the champion is {restored} again."
    else:
        subject = f"ROLLBACK FAILED for v{version}: a person must act"
        body = (
            f"The deployment of v{version} failed and rolling it back failed too: the failed version may "
            f"still serve. It should be {restored}. The error says what state is left and how to restore it."
        )
    return notify(
        spec,
        "rolled_back",
        subject,
        body,
        context,
        rollback="done" if ok else "FAILED",
        model=deployment.get("model_name"),
        version=version,
        **({"champion": restored} if ok else {"champion_should_be": restored}),
        target=deployment.get("target"),
        endpoint=deployment.get("endpoint"),
        error=str(error),
    )


@_alert("validation_failed")
def notify_validation_failed(
    spec: PipelineSpec, context: Mapping[str, Any] | None, report: ValidationReport
) -> list[str]:
    """``validation_failed``: each failed expectation with what was observed, each contract violation."""
    failed = [f.describe() for f in report.failed]
    fatal = [v.describe() for v in report.contract if v.fatal]
    warnings = [v.describe() for v in report.contract if not v.fatal]
    what = [f"{len(failed)} failed expectation(s)"] + (
        [f"{len(fatal)} contract violation(s)"] if fatal else []
    )
    return notify(
        spec,
        "validation_failed",
        f"{' and '.join(what)} in suite {report.suite}; nothing downstream runs",
        "The partition broke the validation suite: the task failed without retrying and nothing "
        "downstream runs. Fix the data (or the expectations / `contract:` in the pipeline YAML) and "
        "clear the task.",
        context,
        suite=report.suite,
        passed=f"{report.evaluated - len(report.failed)}/{report.evaluated}",
        failed_expectations=failed or None,
        contract_violations=fatal or None,
        contract_warnings=warnings or None,
        report=report.html_uri,
        result_json=report.json_uri,
    )


@_alert("policy_fired")
def notify_policy_fired(
    spec: PipelineSpec, context: Mapping[str, Any] | None, evidence: Mapping[str, Any]
) -> list[str]:
    """``policy_fired``: the retraining policy fired; the evidence the Asset event carries."""
    trigger = evidence.get("trigger") or evidence.get("mlops_trigger") or "drift"
    share = evidence.get("drift_share")
    facts = {
        k: v for k, v in evidence.items() if k not in ("reasons", "pipeline", "mlops_trigger", "trigger")
    }
    return notify(
        spec,
        "policy_fired",
        f"{trigger} policy fired on {evidence.get('ds')}"
        + (f" (drift share {share:.2f})" if isinstance(share, int | float) else "")
        + f": {spec.name}_training starts",
        f"The {trigger} policy fired: the monitoring run emitted the pipeline's Asset event and the "
        f"scheduler starts `{spec.name}_training` on the data up to {evidence.get('ds')}.\n\n"
        + "\n".join(f"- {r}" for r in evidence.get("reasons") or []),
        context,
        trigger=trigger,
        **facts,
    )


@_alert("approval_waiting")
def notify_approval_waiting(
    spec: PipelineSpec, context: Mapping[str, Any] | None, version: str, url: str | None
) -> list[str]:
    """``approval_waiting``: model version ``version`` waits for a person; ``url`` is where to decide
    (None: no ``[api] base_url`` to link to; the message points at the task in the UI)."""
    where = "Decide at the link below." if url else "Decide in the Airflow UI, on the waiting task."
    return notify(
        spec,
        "approval_waiting",
        f"v{version} waits for approval",
        f"Model version v{version} of {spec.name} passed the gate and waits for a person to approve or "
        f"reject its deployment. {where}",
        context,
        version=str(version),
        approve_at=url,
    )


@_alert("metric_below_floor")
def notify_metric_below_floor(
    spec: PipelineSpec, context: Mapping[str, Any] | None, evidence: Mapping[str, Any]
) -> list[str]:
    """``metric_below_floor``: the realized metric (on the labels that arrived) decayed.

    :param evidence: the performance step's day (``mlops_core.monitor.feedback.DayPerformance.to_dict()``:
        ``ds``, ``metric``, ``value``, ``low``, ``high``, ``floor``, ``holdout``, ``rows``, ``reasons``...).
    """
    from mlops_core.spec.catalog import METRICS

    metric = str(
        evidence.get("metric")
        or (spec.feedback.decay.metric if spec.feedback and spec.feedback.decay.metric else None)
        or spec.evaluation.primary_metric
    )
    value, low, high, floor = (evidence.get(k) for k in ("value", "low", "high", "floor"))

    def num(x: Any) -> str:
        return f"{x:.4f}" if isinstance(x, int | float) and not isinstance(x, bool) else str(x)

    side = "below" if metric not in METRICS or METRICS[metric].higher_is_better else "above"
    interval = f" [{num(low)}, {num(high)}]" if low is not None and high is not None else ""
    judged = f"{side} floor {num(floor)}" if floor is not None else "decayed"
    reasons = [str(r) for r in evidence.get("reasons") or []]
    return notify(
        spec,
        "metric_below_floor",
        f"realized {metric} {num(value)}{interval} {judged} on {evidence.get('ds')}",
        f"The champion's {metric} on the labels that have arrived for {evidence.get('ds')} is worse "
        "than the pipeline allows (judged on its interval, not the point value).\n\n"
        + "\n".join(f"- {r}" for r in reasons),
        context,
        metric=metric,
        **{k: v for k, v in evidence.items() if k not in ("metric", "reasons")},
        reasons=reasons or None,
    )


@_alert("labels_unmatched")
def notify_labels_unmatched(
    spec: PipelineSpec, context: Mapping[str, Any] | None, evidence: Mapping[str, Any]
) -> list[str]:
    """``labels_unmatched``: more than ``feedback.max_unmatched_share`` of the labels read match no
    monitored prediction (a wrong key column, a key written differently, labels for unscored rows).

    :param evidence: the performance step's day (``mlops_core.monitor.feedback.DayPerformance.to_dict()``).
    """
    fb = spec.feedback
    limit = fb.max_unmatched_share if fb is not None else None
    share = evidence.get("orphan_share")
    shown = f"{float(share):.1%}" if isinstance(share, int | float) else str(share)
    keys = ", ".join(fb.key_columns) if fb is not None else ""
    return notify(
        spec,
        "labels_unmatched",
        f"{evidence.get('orphan_labels')} of {evidence.get('labels')} labels ({shown}) match no prediction",
        f"{shown} of the labels read on {evidence.get('evaluated_on')} match no prediction of any monitored "
        f"day (limit: feedback.max_unmatched_share {limit}). Check `feedback.key_columns` ({keys}) and how "
        "the key is written in the labels and in the scored data.",
        context,
        **{
            k: evidence.get(k)
            for k in (
                "ds",
                "evaluated_on",
                "labels",
                "rows",
                "unmatched_labels",
                "orphan_labels",
                "orphan_share",
            )
        },
    )


@_alert("task_failed")
def notify_task_failed(spec: PipelineSpec, context: Mapping[str, Any]) -> list[str]:
    """``task_failed``: the task, the try, the exception and the log link.

    Not sent for a try that already sent its own alert (validation_failed, rolled_back...).
    """
    key = _ti_key(context)
    if key is not None and key in _ALERTED:
        log.info("task_failed not sent: this try already sent %s", _ALERTED[key])
        return []
    where = _where(context)
    error = context.get("exception")
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "unknown")
    return notify(
        spec,
        "task_failed",
        f"{where.get('task', 'a task')} failed (try {where.get('try', '?')})",
        f"Task `{where.get('task')}` of `{where.get('dag')}` failed and will not be retried.",
        context,
        task=where.get("task"),
        try_number=where.get("try"),
        exception=text,
        log=where.get("log_url"),
    )


def failure_callback(spec: PipelineSpec) -> Callable[[Mapping[str, Any]], None]:
    """An ``on_failure_callback`` that sends ``task_failed`` (a plain function: cheap to deep-copy)."""

    def on_failure(context: Mapping[str, Any]) -> None:
        notify_task_failed(spec, context)

    on_failure.__name__ = on_failure.__qualname__ = f"mlops_alert_{spec.name}"
    return on_failure
