"""Alerts: a pipeline's events, sent through the notifiers Airflow's providers ship.

``alerts:`` in the pipeline YAML (:class:`~mlops_core.spec.AlertsSpec`) lists the events a team
wants and where they go. :func:`notify` routes one event, when it is listed, to

* e-mail: the smtp provider's ``SmtpNotifier`` on ``alerts.smtp_conn_id`` (server, login and the
  sender, ``from_email`` in the connection's extra, all come from the connection), to
  ``alerts.email``, with an HTML body built here (:func:`~mlops_airflow.notifications.messages.render_html`: every value escaped,
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
import logging
from typing import TYPE_CHECKING, Any, ParamSpec

from mlops_airflow.notifications.messages import (
    SNS_SUBJECT_CHARS,
    one_line,
    render_html,
    render_text,
    subject_line,
    task_where,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mlops_core.data.validation import ValidationReport
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)
P = ParamSpec("P")

# The record that a try sent its own alert, kept on that try's task instance (the object Airflow
# hands to its execute and to its failure callback): the callback does not repeat it as task_failed.
_SENT_ATTR = "_mlops_alert_sent"


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


def _ti_key(context: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    where = task_where(context)
    if not where.get("task"):
        return None
    ti = (context or {}).get("ti") or (context or {}).get("task_instance")
    map_index = getattr(ti, "map_index", -1)
    return tuple(str(where.get(k)) for k in ("dag", "run", "task", "try")) + (str(map_index),)


def _record_sent(context: Mapping[str, Any] | None, event: str) -> None:
    """Note on the try's task instance that it sent ``event`` (keyed by dag, run, task, try and map
    index, so a task instance object reused for another try does not carry it over)."""
    key = _ti_key(context)
    ti = (context or {}).get("ti") or (context or {}).get("task_instance")
    if key is None or ti is None:
        return
    try:
        setattr(ti, _SENT_ATTR, (key, event))
    except Exception as err:  # a task instance that takes no attribute: task_failed may then repeat it
        log.info("alerts: cannot note %s on the task instance (%s)", event, err)


def sent_by_try(context: Mapping[str, Any] | None) -> str | None:
    """The alert this try already sent itself (validation_failed, rolled_back...), if any."""
    ti = (context or {}).get("ti") or (context or {}).get("task_instance")
    record = getattr(ti, _SENT_ATTR, None) if ti is not None else None
    if not (isinstance(record, tuple) and len(record) == 2):
        return None
    key, event = record
    return str(event) if key == _ti_key(context) else None


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
                subject=one_line(
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
    where = task_where(context)
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
    if sent and event != "task_failed":
        _record_sent(context, event)
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
    already = sent_by_try(context)
    if already is not None:
        log.info("task_failed not sent: this try already sent %s", already)
        return []
    where = task_where(context)
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
