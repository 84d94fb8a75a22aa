"""The release steps: deploy to the target, smoke test, promote after the bake (or roll back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_airflow.operators.base import (
    _PARTITIONED,
    MlopsStep,
    _as_bool,
    _run_type,
    in_cloud_profile,
    tracking,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.deploy import DeploymentTarget
    from mlops_core.spec import PipelineSpec


class DeployOperator(MlopsStep, BaseOperator):
    """Deploy a registered version to the spec's target (``auto``: the cloud profile's).

    ``local`` moves the ``champion`` alias. Endpoint targets (SageMaker, Vertex AI, Azure ML)
    create-or-update the endpoint with the spec's strategy, then the task defers until the
    platform reports the new version ready. Skips (the run stays green) when the gate rejected.

    The gate's decision is always re-read from the registry, on the tags of this exact version:
    a version the gate did not promote is never deployed, whatever an XCom says (an XCom that
    claims ``promote`` for a rejected version fails the task), and ``champion`` moves only if it
    is still the version the challenger was evaluated against.

    :param registered: the register result (XCom dict with ``version``).
    :param decision: the gate decision (XCom dict): a rejection skips early; the registry decides.
    :param poll_seconds: how often the trigger asks the platform for the endpoint's state.
    """

    template_fields: Sequence[str] = ("registered", "decision")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        registered: Any,
        decision: Any = None,
        poll_seconds: float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.registered = registered
        self.decision = decision
        self.poll_seconds = poll_seconds

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import rollout
        from mlops_core.deploy import READY
        from mlops_core.runs import registry

        version = str(self.registered["version"])
        if self.decision is not None and not _as_bool(self.decision.get("promote")):
            reasons = "; ".join(self.decision.get("reasons", []))
            raise AirflowSkipException(f"gate rejected v{version}, champion unchanged: {reasons}")
        try:
            deployment = rollout.deploy(self.spec, version, target(self))
        except registry.DecisionRefused as err:
            if self.decision is None and err.outcome == "reject":
                raise AirflowSkipException(str(err)) from err
            raise AirflowFailException(str(err)) from err  # a forged or unbound decision
        except registry.ChampionMoved as err:  # a retry would find the same champion
            raise AirflowFailException(str(err)) from err
        except rollout.TargetMismatch as err:  # a retry would resolve the same target
            raise AirflowFailException(str(err)) from err
        if deployment["state"] == READY:
            return deployment
        from mlops_airflow.triggers.cloud import EndpointTrigger

        self.log.info("%s is updating; deferring until it is ready", deployment["endpoint"])
        self.defer(
            trigger=EndpointTrigger(self.spec.cloud, deployment["target"], deployment, self.poll_seconds),
            method_name="deploy_complete",
        )

    @in_cloud_profile
    def deploy_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """The endpoint is ready; on a platform failure roll back and fail without retry.

        A wait that ended on transient errors only (the platform stopped answering for a while)
        is not a failed deploy: the task fails *with* retries, and the retry, a create-or-update
        of the same deployment, attaches to it and waits again.
        """
        from airflow.sdk.exceptions import AirflowException

        from mlops_core import rollout

        event = event or {}
        if event.get("status") != "success" and event.get("reason") == "transient":
            raise AirflowException(
                f"lost contact with the platform while the deploy was updating ({event.get('message')}); "
                "nothing rolled back, the task retries and attaches to the same deployment"
            )
        if event.get("status") != "success":
            from mlops_airflow.notifications import alerts as notifiers

            try:
                rollout.rollback(self.spec, event["deployment"], target(self))
            except rollout.RollbackFailed as err:
                _push_deploy(self, rollback_failed=True)
                notifiers.notify_rolled_back(self.spec, context, event["deployment"], err, ok=False)
                raise AirflowFailException(f"deploy failed ({event.get('message')}); {err}") from err
            _push_deploy(self, rollback_failed=False)
            message = f"deploy failed and was rolled back: {event.get('message')}"
            notifiers.notify_rolled_back(self.spec, context, event["deployment"], message, ok=True)
            raise AirflowFailException(message)
        return dict(event["deployment"])

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The registered model version -> the endpoint it now serves on."""
        from mlops_airflow import lineage

        inputs = [
            lineage.model_version_dataset(
                tracking(), self.spec.registered_model_name, self.registered["version"]
            )
        ]
        if not result or "endpoint" not in result:
            return inputs, []
        return inputs, [lineage.endpoint_dataset(tracking(), result, self.profile.name)]


def target(step: MlopsStep) -> DeploymentTarget:
    """The step's deployment target, with its cloud clients (from the profile's connection)."""
    from mlops_core.targets import get_target, resolve_target_name

    name = resolve_target_name(step.spec, step.profile)
    if name == "local":
        if step.spec.deployment.strategy != "all_at_once":
            step.log.info(  # type: ignore[attr-defined]
                "deployment.strategy %s acts as all_at_once on the local target (one alias, no traffic to split)",
                step.spec.deployment.strategy,
            )
        return get_target("local")
    from mlops_airflow.hooks.cloud import clients_for

    return get_target(name, step.profile, clients_for(step.profile))


class SmokeTestOperator(MlopsStep, BaseOperator):
    """Score held-out rows through the deployment and compare with the offline predictions.

    Passed: a canary on Vertex AI or Azure ML bakes for ``canary_wait_minutes`` (deferred), then
    all traffic and the ``champion`` alias move to the new version (SageMaker shifts the traffic
    itself, guarded by its CloudWatch alarm). Failed: traffic rolls back, the alias is restored
    and the task fails without retry.
    """

    template_fields: Sequence[str] = ("deployment", "trained", "evaluation")

    def __init__(
        self, *, pipeline: PipelineSpec | str, deployment: Any, trained: Any, evaluation: Any, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.deployment = deployment
        self.trained = trained
        self.evaluation = evaluation

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import rollout

        try:
            result = rollout.smoke_test(
                self.spec,
                self.deployment,
                self.trained["holdout_uri"],
                self.evaluation["predictions_uri"],
                target(self),
            )
        except Exception as err:  # rolled back already (or the rollback failed); a retry would deploy nothing
            from mlops_airflow.notifications import alerts as notifiers

            _push_deploy(self, rollback_failed=isinstance(err, rollout.RollbackFailed))
            notifiers.notify_rolled_back(self.spec, context, self.deployment, err)
            raise AirflowFailException(str(err)) from err
        dep = self.spec.deployment
        if (
            dep.strategy == "canary"
            and dep.canary_wait_minutes > 0
            and self.deployment["target"] in ("vertex", "azureml", "kserve")
        ):
            from datetime import timedelta

            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.log.info(
                "canary passed the smoke test; baking %d min before promotion", dep.canary_wait_minutes
            )
            self.defer(
                trigger=TimeDeltaTrigger(timedelta(minutes=dep.canary_wait_minutes)),
                method_name="promote_after_bake",
                kwargs={"smoke": result},
            )
        return {**result, "deployment": self._promote()}

    @in_cloud_profile
    def promote_after_bake(
        self, context: Context, event: Any = None, smoke: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {**(smoke or {}), "deployment": self._promote()}

    def _promote(self) -> dict[str, Any]:
        from mlops_airflow.notifications import alerts as notifiers
        from mlops_core import rollout

        try:
            done = rollout.promote(self.spec, self.deployment, target(self))
        except rollout.RollbackFailed as err:  # (context None: the running task's)
            _push_deploy(self, rollback_failed=True)
            notifiers.notify_rolled_back(self.spec, None, self.deployment, err, ok=False)
            raise AirflowFailException(f"promotion failed; {err}") from err
        except Exception as err:  # rolled back already
            _push_deploy(self, rollback_failed=False)
            notifiers.notify_rolled_back(
                self.spec, None, self.deployment, f"promotion failed: {err}", ok=True
            )
            raise AirflowFailException(f"promotion failed and was rolled back: {err}") from err
        _push_deploy(self, rollback_failed=False)
        return done

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The endpoint it tested -> the ``champion`` alias it moved (the model batch scoring and
        monitoring read; on the local target the same alias is the endpoint). A live challenger or
        a shadow leaves the champion where it is: no output (its verdict step names the move)."""
        from mlops_airflow import lineage

        deployment = self.deployment if isinstance(self.deployment, dict) else {}
        inputs = [lineage.endpoint_dataset(tracking(), deployment, self.profile.name)] if deployment else []
        if not result:
            return inputs, []
        moved = result.get("deployment") or deployment
        extra = moved.get("extra") or {}
        if extra.get("challenger") or extra.get("shadow"):  # beside the champion: its verdict moves it
            return inputs, []
        champion = lineage.champion_dataset(tracking(), self.spec.registered_model_name)
        version = moved.get("version") or deployment.get("version")
        return inputs, [lineage.LineageDataset(champion.namespace, champion.name, str(version))]


def _push_deploy(step: MlopsStep, *, rollback_failed: bool) -> None:
    """Champion, deploy and rollback counts to the Pushgateway (when set; never raises)."""
    from mlops_core.monitor import prometheus

    prometheus.push_deploy(step.spec.name, step.spec.registered_model_name, rollback_failed=rollback_failed)


class _VerdictOperator(MlopsStep, BaseOperator):
    """A daily verdict on a version running beside the champion (``kind``: the live challenger or the
    shadow): promote, reject or keep watching. Runs on the release queue: it moves aliases. Skips
    when no such version is live. A backfill run reports the verdict of its day without acting."""

    template_fields: Sequence[str] = _PARTITIONED
    kind = ""  # "challenger" | "shadow"
    alias = ""  # the registry alias the judged version is on: "live_challenger" | "shadow"

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root

    def judge(self, ds: str, act: bool) -> dict[str, Any]:
        raise NotImplementedError

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        return self.verdict(context)

    def verdict(self, context: Context) -> dict[str, Any]:
        """The day's verdict, acted on unless the run is a backfill; no ``kind`` yet skips the task."""
        from mlops_core.runs import registry

        backfill = _run_type(context) == "backfill"  # a backfilled day reports; it never moves aliases
        try:
            result = self.judge(self.partition(context), act=not backfill)
        except (registry.DecisionRefused, registry.ChampionMoved) as err:
            raise AirflowFailException(f"the {self.kind}'s promotion was refused: {err}") from err
        if result["status"] == f"no_{self.kind}":
            raise AirflowSkipException("; ".join(result["reasons"]))
        self.log.info(
            "%s verdict %s:\n  - %s", self.kind, result["status"].upper(), "\n  - ".join(result["reasons"])
        )
        return result

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The champion alias and the ``alias`` the judged version is on (the local target's
        endpoint name for it), with what the verdict reads of the day -> what it moved: the
        ``champion`` alias on a promotion (the version now champion as its version), the judged
        version's alias on a rollback or rejection (removed), nothing while it keeps watching."""
        from mlops_airflow import lineage

        name = self.spec.registered_model_name
        champion = lineage.champion_dataset(tracking(), name)
        judged = lineage.alias_dataset(tracking(), name, self.alias)
        inputs = [champion, judged, *self.day_datasets(context)]
        status = str((result or {}).get("status") or "")
        if not result or not result.get("acted"):
            return inputs, []
        if status == "promote":
            version = result.get(f"{self.kind}_version")
            return inputs, [lineage.LineageDataset(champion.namespace, champion.name, str(version))]
        if status in ("rollback", "reject"):
            return inputs, [judged]
        return inputs, []

    def day_datasets(self, context: Context) -> list[Any]:
        """The lake partitions (and labels) the verdict of the day reads that another step names."""
        return []


class ChallengerVerdictOperator(_VerdictOperator):
    """The live challenger's daily verdict (``deployment.challenger``): the sequential test on every
    labelled row so far, then promote (champion moves, after the gate record and the approval are
    checked again) or roll back (off the split; the champion stays), or keep watching.
    """

    kind = "challenger"
    alias = "live_challenger"

    def judge(self, ds: str, act: bool) -> dict[str, Any]:
        from mlops_core import challenger

        return challenger.judge(self.spec, self.lake, ds, act=act)

    def day_datasets(self, context: Context) -> list[Any]:
        """The performance history of the prediction day this run's ``performance`` step judged
        (each arm's sums; the test adds up the earlier days too, named by the runs that wrote them)."""
        from datetime import date, timedelta

        from mlops_airflow import lineage
        from mlops_core.data import storage
        from mlops_core.monitor import feedback

        assert self.spec.feedback is not None
        day = date.fromisoformat(self.partition(context)) - timedelta(days=self.spec.feedback.delay_days)
        return [lineage.uri_dataset(storage.partition_uri(self.lake, self.spec.name, feedback.HISTORY, day))]


class ShadowVerdictOperator(_VerdictOperator):
    """The shadow's verdict (``deployment.shadow``): once ``days`` monitored days and ``min_rows`` rows
    are in, compare its predictions with the champion's on the same rows (agreement, score shift,
    the paired metric interval on the labelled rows), then promote (champion moves, after the gate
    record, the approval and the digest are checked again) or reject (the shadow is removed; the
    champion stays), or keep waiting (:func:`mlops_core.shadow.judge`). On an endpoint target a
    promotion moves the endpoint to the shadow's version: the task defers until the platform
    reports it ready, then smoke-tests it and moves the champion (:func:`mlops_core.shadow.complete_promotion`).
    """

    kind = "shadow"
    alias = "shadow"

    def judge(self, ds: str, act: bool) -> dict[str, Any]:
        from mlops_core import shadow

        return shadow.judge(self.spec, self.lake, ds, act=act, target=target(self))

    def day_datasets(self, context: Context) -> list[Any]:
        """The day's served predictions (the ``score`` output it pairs the shadow's with) and, with
        ``feedback``, the labels file(s)."""
        from mlops_airflow import lineage
        from mlops_core.base import settings
        from mlops_core.data import storage
        from mlops_core.monitor import feedback

        day = self.partition(context)
        served = storage.partition_uri(self.lake, self.spec.name, feedback.PREDICTIONS, day)
        labels = lineage.labels_datasets(self.spec, day, settings.expand) if self.spec.feedback else []
        return [lineage.uri_dataset(served), *labels]

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.deploy import READY

        result = self.verdict(context)
        moving = result.get("deployment")
        if moving and moving["state"] != READY:
            from mlops_airflow.triggers.cloud import EndpointTrigger

            self.log.info("%s is taking the promoted shadow; deferring until it is ready", moving["endpoint"])
            self.defer(
                trigger=EndpointTrigger(self.spec.cloud, moving["target"], moving, 30),
                method_name="promotion_complete",
                kwargs={"result": result},
            )
        return result

    @in_cloud_profile
    def promotion_complete(
        self, context: Context, event: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The endpoint took the promoted shadow: smoke test, then champion; on a failure roll back."""
        from mlops_core import rollout, shadow

        event, result = event or {}, dict(result or {})
        if event.get("status") != "success":
            rollout.rollback(self.spec, event["deployment"], target(self))
            raise AirflowFailException(
                f"the promoted shadow's deploy failed and was rolled back: {event.get('message')}"
            )
        try:
            result["deployment"] = shadow.complete_promotion(
                self.spec, event["deployment"], target(self), self.lake
            )
        except shadow.PromotionFailed as err:
            raise AirflowFailException(str(err)) from err
        return result
