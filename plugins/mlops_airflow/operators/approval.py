"""A person approves a promotion: Airflow's human-in-the-loop ``ApprovalOperator`` between register and deploy.

The task waits in Airflow 3.3's ``awaiting_input`` state (no worker slot, no triggerer) on the
Required Actions page, or for ``PATCH /api/v2/.../hitlDetails`` from the REST API. Its body shows
the evidence in Markdown: metrics against the champion with the bootstrap interval, the gate's
reasons and slices, the drift or decay evidence that started the run, and where the reports and
the model card are. Approve: deploy runs. Reject, or no answer within the timeout (the default
option is Reject): deploy and smoke_test are skipped. Either way the outcome, who and when are
recorded on the model version (``mlops.approval``, ``mlops.approved_by``, ``mlops.approved_at``,
``mlops.approval_comment``), and deploy itself refuses a version whose approval is not recorded.

The answer is the one Airflow's HITL trigger read from this task's own ``HITLDetail`` row (which
tasks cannot write through the API): an "Approve" counts only when a person gave it (the row
names the user; an answer written by a task through the Execution API has none). The recorded approval is sealed with the release
key (:mod:`mlops_core.runs.release`), so an ``mlops.approval=approved`` tag set by anything else is
refused at deploy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from mlops_airflow.operators.base import MlopsStep, drift_evidence, in_cloud_profile, tracking

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec

APPROVAL_TAG = "mlops.approval"


def md(value: Any) -> str:
    """A value as inert inline Markdown (:func:`mlops_core.base.html.markdown`): the UI renders the body."""
    from mlops_core.base.html import markdown

    return markdown(value)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else md(value))


class ModelApprovalOperator(MlopsStep, ApprovalOperator):
    """Ask a person whether the registered challenger becomes champion.

    :param registered: the register result (XCom dict: ``version``, ``outcome``, model card URIs).
    :param decision: the gate decision (XCom dict: reasons, slices).
    :param evaluation: the evaluate result (XCom dict: metrics, bootstrap).
    :param trained: the train result (XCom dict: run id, rows).
    """

    template_fields: Sequence[str] = ("subject", "body", "registered", "decision", "evaluation", "trained")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        registered: Any,
        decision: Any,
        evaluation: Any,
        trained: Any,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", "Promote this model to champion?")
        # the DAG's own params arrive here too (HITLOperator keeps only the task's in its form)
        params = kwargs.pop("params", None) or {}
        # null-able: the form treats an empty required string as missing and would keep Approve disabled
        params["comment"] = Param(
            None,
            type=["null", "string"],
            maxLength=1000,
            title="Comment",
            description="Optional; recorded on the model version.",
        )
        super().__init__(
            defaults=ApprovalOperator.REJECT,  # no answer within the timeout is a rejection
            params=params,
            **kwargs,
        )
        self.pipeline = pipeline
        self.registered = registered
        self.decision = decision
        self.evaluation = evaluation
        self.trained = trained

    @in_cloud_profile
    def execute(self, context: Context) -> Any:
        from mlops_core.runs import registry

        version = str(self.registered["version"])
        outcome = str(self.registered.get("outcome") or (self.decision or {}).get("outcome"))
        if outcome not in ("promote", "forced"):
            raise AirflowSkipException(f"gate {outcome} v{version}: nothing to approve, champion unchanged")
        self.subject = f"Promote {self.spec.name} v{version} to champion?"
        self.body = self.evidence(context)
        registry.set_tags(self.spec.registered_model_name, version, {APPROVAL_TAG: "pending"})
        self._notify_waiting(context, version)
        return super().execute(context)

    @in_cloud_profile
    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Record the answer on the version (approved, rejected or timed out), then let the
        ApprovalOperator skip deploy unless approved.

        Recorded first: on Reject, Airflow 3's ``skip`` ends the task by raising, so nothing
        after the base class's ``execute_complete`` would run.
        """
        if "error" not in event:  # a timeout with no default never happens here (defaults=Reject)
            chosen_options = list(event.get("chosen_options") or [])
            self.validate_chosen_options(chosen_options)  # what the base class checks, before we record
            chosen = (chosen_options or [ApprovalOperator.REJECT])[0]
            user = event.get("responded_by_user") or {}
            if chosen == ApprovalOperator.APPROVE and self._person_approved(context, user):
                outcome = "approved"
            elif chosen == ApprovalOperator.APPROVE:
                outcome = "rejected"
                event = {**event, "chosen_options": [ApprovalOperator.REJECT]}
            else:
                outcome = "timed_out" if event.get("timedout") else "rejected"
            comment = str((event.get("params_input") or {}).get("comment") or "")[:1000]
            version = str(self.registered["version"])
            who = str(user.get("name") or user.get("id") or "")
            self._record(version, outcome, who, event.get("responded_at"), comment)
            self.log.info("%s v%s: %s by %s", self.spec.name, version, outcome, who or "nobody (timeout)")
        result = super().execute_complete(context, event)  # on Reject this skips deploy by raising
        return {**dict(result), "outcome": "approved", "version": str(self.registered["version"])}

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The model version a person approves (the answer is recorded on it, not a new dataset)."""
        from mlops_airflow import lineage

        version = (self.registered or {}).get("version")
        if version is None:
            return [], []
        return [lineage.model_version_dataset(tracking(), self.spec.registered_model_name, version)], []

    def _person_approved(self, context: Context, user: dict[str, Any]) -> bool:
        """A named person chose Approve: the answer event is built by Airflow's HITL trigger from
        this task's ``HITLDetail`` row (tasks cannot write it), and an answer written through the
        Execution API (by a task) has no user in that row."""
        if not (user.get("id") or user.get("name")):
            self.log.warning("an Approve with no user behind it (not a person's answer): counted as Reject")
            return False
        return True

    def _record(self, version: str, outcome: str, who: str, when: Any, comment: str) -> None:
        from mlops_core.runs import registry, release

        name = self.spec.registered_model_name
        tags = {
            APPROVAL_TAG: outcome,
            "mlops.approved_by": who,
            "mlops.approved_at": when.isoformat() if hasattr(when, "isoformat") else str(when or ""),
            "mlops.approval_comment": comment,
        }
        tags[release.APPROVAL_SEAL_TAG] = release.seal(
            "approval", **release.approval_fields(name, version, tags)
        )
        registry.set_tags(name, version, tags)
        try:  # the model card shows the decision (mlops_core.model.modelcard, when present)
            from mlops_core.model import modelcard

            modelcard.publish(self.spec, version, self.lake)
        except ImportError:
            pass

    def _notify_waiting(self, context: Context, version: str) -> None:
        if self.spec.alerts is None:
            return
        try:
            url: str | None = self.generate_link_to_ui_from_context(context=context)
        except ValueError:  # no [api] base_url configured
            url = None
        from mlops_airflow.notifications import alerts as notifiers

        notifiers.notify_approval_waiting(self.spec, context, version, url)

    # --- the page body ---------------------------------------------------------------------------

    def evidence(self, context: Context) -> str:
        """The approval page body (Markdown, every value escaped)."""
        spec, ev, dec = self.spec, self.evaluation or {}, self.decision or {}
        version = str(self.registered["version"])
        parts = [
            f"### {md(spec.name)} v{md(version)}: gate **{md(dec.get('outcome', '?'))}**",
            md(spec.description) if spec.description else "",
            self._metrics_table(ev),
            self._reasons(dec),
            self._slices(dec),
            self._trigger(context),
            self._links(context, version),
        ]
        return "\n\n".join(p for p in parts if p)

    def _metrics_table(self, ev: dict[str, Any]) -> str:
        challenger, champion = ev.get("challenger") or {}, ev.get("champion") or {}
        against = ev.get("champion_version")
        head = (
            f"| metric | challenger | champion {'v' + md(against) if against else '(none)'} |\n|---|---|---|"
        )
        rows = [f"| {md(k)} | {_fmt(v)} | {_fmt(champion.get(k))} |" for k, v in challenger.items()]
        boot = ev.get("bootstrap")
        note = ""
        if boot:
            note = (
                f"\n\nImprovement on `{md(self.spec.evaluation.primary_metric)}`: {_fmt(boot.get('delta'))}, "
                f"{float(boot.get('confidence', 0.95)):.0%} paired-bootstrap interval "
                f"[{_fmt(boot.get('low'))}, {_fmt(boot.get('high'))}]"
            )
        return "**Holdout metrics**\n\n" + head + "\n" + "\n".join(rows) + note

    @staticmethod
    def _reasons(dec: dict[str, Any]) -> str:
        reasons = dec.get("reasons") or []
        return "**Gate reasons**\n\n" + "\n".join(f"- {md(r)}" for r in reasons) if reasons else ""

    @staticmethod
    def _slices(dec: dict[str, Any]) -> str:
        """The gate's slice report (mlops_core.model.slices): violations, then each judged metric's worst slice."""
        sl = dec.get("slices")
        if not sl:
            return ""
        lines = ["**Slices**", ""]
        lines += [f"- violation: {md(v)}" for v in sl.get("violations") or []]
        for column, per in (sl.get("gaps") or {}).items():
            for metric, gap in per.items():
                lines.append(
                    f"- {md(column)}, {md(metric)}: worst {md(gap.get('worst'))} {_fmt(gap.get('worst_value'))}, "
                    f"best {md(gap.get('best'))} {_fmt(gap.get('best_value'))}, gap {_fmt(gap.get('gap'))}"
                )
        for slices in (sl.get("columns") or {}).values():
            for s in slices if isinstance(slices, list) else []:
                if not s.get("judged", True):
                    lines.append(f"- {md(s.get('slice'))}: {int(s.get('rows') or 0)} rows, not judged")
        return "\n".join(lines) if len(lines) > 2 else ""

    @staticmethod
    def _trigger(context: Context) -> str:
        evidence = drift_evidence(context)
        if not evidence:
            return ""
        trigger = md(evidence.get("trigger") or "drift")
        text = (
            f"**Why this run**: {trigger} on {md(evidence.get('ds'))}: drift share {_fmt(evidence.get('drift_share'))}, "
            f"drifted columns {md(', '.join(evidence.get('drifted_columns') or []) or 'none')}"
        )
        perf = evidence.get("performance") or {}
        if perf.get("value") is not None:
            text += (
                f"; realized {md(perf.get('metric'))} {_fmt(perf.get('value'))} "
                f"[{_fmt(perf.get('low'))}, {_fmt(perf.get('high'))}] against holdout {_fmt(perf.get('holdout'))}"
            )
        return text

    def _links(self, context: Context, version: str) -> str:
        from mlops_core.base import settings
        from mlops_core.data import filesystems, storage

        trained, registered = self.trained or {}, self.registered or {}
        ds = self.partition(context)
        lines = ["**Where to look**", ""]
        run_id = trained.get("run_id")
        tracking = settings.tracking_uri()
        if run_id and tracking.startswith(("http://", "https://")):
            exp = trained.get("experiment_id", "0")
            lines.append(f"- MLflow run: <{tracking.rstrip('/')}/#/experiments/{md(exp)}/runs/{md(run_id)}>")
        elif run_id:
            lines.append(f"- MLflow run `{md(run_id)}` (`make mlflow-ui`)")
        validation = filesystems.join(
            storage.partition_uri(self.lake, self.spec.name, "validation", ds), "result.html"
        )
        lines.append(f"- validation report: `{md(settings.redact(validation))}`")
        evidence = drift_evidence(context)
        if evidence.get("report_uri"):
            lines.append(f"- drift report: `{md(settings.redact(str(evidence['report_uri'])))}`")
        for key, label in (("model_card_html_uri", "model card (HTML)"), ("model_card_uri", "model card")):
            if registered.get(key):
                lines.append(f"- {label}: `{md(settings.redact(str(registered[key])))}`")
                break
        lines.append(f"- registered model `{md(self.spec.registered_model_name)}` v{md(version)}")
        return "\n".join(lines)


def approval_kwargs(spec: PipelineSpec) -> dict[str, Any]:
    """``assigned_users`` and the response timeout from ``deployment.approval``."""
    cfg = spec.deployment.approval
    assert cfg is not None
    users = [{"id": u, "name": u} for u in cfg.assigned_users] or None
    return {"assigned_users": users, "response_timeout": timedelta(minutes=cfg.timeout_minutes)}
