"""The release steps: deploy an approved version, smoke test it, promote it, and roll it back.

Each step works through the pipeline's deployment target (:mod:`mlops_core.targets`) and moves
the registry's ``champion`` alias by compare-and-swap (:func:`mlops_core.runs.registry.champion_guard`),
so two runs can never both win; a deployment that fails its smoke test or its promotion is rolled
back with retries, and :class:`RollbackFailed` says a person must act.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_core.deploy import EndpointTarget
from mlops_core.runs import registry, release, run_artifacts

if TYPE_CHECKING:
    from mlops_core.deploy import DeploymentTarget
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)


def deploy(spec: PipelineSpec, version: str, target: DeploymentTarget | None = None) -> dict[str, Any]:
    """Deploy ``version`` if the registry's decision for it allows; endpoint targets return ``updating``.

    The decision is re-read from the version's tags (not trusted from the caller), the artifact
    is checked against its recorded digest, and ``champion`` must still be the version the
    challenger was evaluated against (checked now, and again as a compare-and-swap when the
    target moves the alias). A failure after the alias moved puts it back.
    """
    from mlops_core.runs import tracking

    tracking.configure()
    name = spec.registered_model_name
    found = registry.check_deployable(name, version)
    approval = spec.deployment.approval
    if approval is not None and approval.required:
        check_approved(name, version, found.tags)
    run_artifacts.verify_artifact(name, version, found.tags)
    before = registry.alias_version(name, registry.CHAMPION)
    if before not in (version, found.evaluated_against):
        raise registry.ChampionMoved(
            f"champion of {name} is v{before if before else ' (none)'}, but v{version} was evaluated "
            f"against {'v' + found.evaluated_against if found.evaluated_against else 'no champion'}; "
            "nothing was deployed. Re-run the training DAG to evaluate against the current champion"
        )
    chosen = _target(spec, target)
    shadow = spec.deployment.shadow_on and before not in (None, version)
    mirrored = spec.deployment.shadow is not None and spec.deployment.shadow.mirror_percent is not None
    if shadow and mirrored and getattr(chosen, "name", "") != "azureml":
        raise TargetMismatch(
            f"deployment.shadow.mirror_percent mirrors an Azure ML endpoint's requests; this pipeline deploys "
            f"to {getattr(chosen, 'name', chosen)!r}: remove mirror_percent, or deploy to azureml"
        )
    try:
        with registry.champion_guard(name, found.evaluated_against):
            if shadow and isinstance(chosen, EndpointTarget):  # the endpoint keeps serving the champion
                return chosen.deploy_shadow(spec, version, str(before)).to_dict()
            return chosen.deploy(spec, version).to_dict()
    except registry.ChampionMoved:
        raise
    except Exception:
        if before != version:
            _compensate(name, version, before)
        raise


class TargetMismatch(ValueError):
    """The spec asks for something the profile's target cannot do (``target: auto``): a retry would
    resolve the same target, so the task fails without one."""


def check_approved(name: str, version: str, tags: dict[str, str]) -> None:
    """A person approved this version: ``mlops.approval=approved`` with the approval task's seal.

    The approval task records the answer it read back from Airflow's human-in-the-loop record
    (:mod:`mlops_airflow.operators.approval`) and seals it; a tag set by anything else has no valid seal.
    """
    got = tags.get(APPROVAL_TAG)
    if got != "approved":
        raise registry.DecisionRefused(
            f"v{version} of {name} needs a person's approval (deployment.approval) and its {APPROVAL_TAG} "
            f"tag is {got or 'absent'}; nothing was deployed. Approve it on the approval task's Required "
            "Actions page, or re-run the training DAG",
            got,
        )
    if not release.verify(
        tags.get(release.APPROVAL_SEAL_TAG), "approval", **release.approval_fields(name, version, tags)
    ):
        raise registry.DecisionRefused(
            f"v{version} of {name} is tagged {APPROVAL_TAG}=approved but the approval is not sealed by "
            f"the approval task (tag {release.APPROVAL_SEAL_TAG} missing or not matching): no person's "
            "answer recorded by the release steps backs it; nothing was deployed",
            "forged",
        )


def _compensate(name: str, version: str, before: str | None) -> None:
    """A deploy failed: if it had moved ``champion`` to ``version``, move it back to ``before``."""
    try:
        moved = registry.alias_version(name, registry.CHAMPION) == version
        if moved:
            registry.restore(name, version, before)
            log.warning("deploy of %s v%s failed after moving champion; restored %s", name, version, before)
    except Exception:
        log.exception(
            "deploy of %s v%s failed and champion could not be checked/restored; set it to %s by hand",
            name,
            version,
            f"v{before}" if before else "nothing (delete the alias)",
        )


def _target(spec: PipelineSpec, target: DeploymentTarget | None) -> DeploymentTarget:
    from mlops_core.targets import get_target, resolve_target_name

    return target if target is not None else get_target(resolve_target_name(spec, None))


APPROVAL_TAG = (
    "mlops.approval"  # approved | rejected | timed_out | pending (mlops_airflow.operators.approval)
)

ROLLBACK_ATTEMPTS = 4
ROLLBACK_BACKOFF_SECONDS = 2.0


class RollbackFailed(RuntimeError):
    """Rolling back a failed deployment did not succeed after retries: a person must act."""


def rollback(spec: PipelineSpec, deployment: dict[str, Any], target: DeploymentTarget | None = None) -> None:
    """Undo a deployment (traffic and ``champion``), retrying with backoff; :class:`RollbackFailed` if it cannot."""
    import time

    from mlops_core.deploy import Deployment

    target = _target(spec, target)
    dep = Deployment(**deployment)
    for attempt in range(1, ROLLBACK_ATTEMPTS + 1):
        try:
            if dep.extra.get("shadow") and isinstance(target, EndpointTarget):  # the champion never moved
                target.rollback_shadow(spec, dep)
            else:
                target.rollback(spec, dep)
            return
        except Exception as err:
            if attempt == ROLLBACK_ATTEMPTS:
                raise RollbackFailed(_rollback_state(dep, attempt, err)) from err
            wait = ROLLBACK_BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning(
                "rollback of %s v%s failed (%s); retry %d in %.0fs",
                dep.model_name,
                dep.version,
                err,
                attempt,
                wait,
            )
            time.sleep(wait)


def _rollback_state(dep: Any, attempts: int, err: Exception) -> str:
    try:
        champion = registry.alias_version(dep.model_name, registry.CHAMPION)
        state = f"alias champion points at {'v' + champion if champion else 'nothing'}"
    except Exception as read_err:
        state = f"the registry cannot be read either ({type(read_err).__name__})"
    want = f"v{dep.previous_version}" if dep.previous_version else "no champion (delete the alias)"
    return (
        f"ROLLBACK FAILED after {attempts} attempts ({type(err).__name__}: {str(err)[:300]}): "
        f"{dep.target} deployment {dep.endpoint} may still serve the failed {dep.model_name} v{dep.version}; "
        f"{state}. It should be {want}. Fix the cause, then clear this task to roll back again, "
        f"or restore by hand (champion -> {want}; for an endpoint, traffic back to {want})"
    )


def smoke_test(
    spec: PipelineSpec,
    deployment: dict[str, Any],
    holdout_uri: str,
    predictions_uri: str,
    target: DeploymentTarget | None = None,
) -> dict[str, Any]:
    """Score held-out rows through the deployment; on any mismatch roll back and raise SmokeTestFailed."""
    from mlops_core.deploy import Deployment, SmokeTestFailed

    target = _target(spec, target)
    dep = Deployment(**deployment)
    try:
        result = target.smoke_test(spec, dep, holdout_uri, predictions_uri)
    except Exception as err:
        rollback(spec, deployment, target)
        raise RuntimeError(
            f"smoke test of v{dep.version} could not run ({err}); rolled back to {dep.previous_version or 'no champion'}"
        ) from err
    if not result.passed:
        rollback(spec, deployment, target)
        raise SmokeTestFailed(result, dep)
    registry.set_tags(
        dep.model_name, dep.version, {"mlops.smoke_test": "passed", "mlops.deployed_to": dep.endpoint}
    )
    return result.to_dict()


def promote(
    spec: PipelineSpec, deployment: dict[str, Any], target: DeploymentTarget | None = None
) -> dict[str, Any]:
    """All traffic to the smoke-tested version and ``champion`` to it; roll back if that fails.

    ``champion`` moves only if it is still the version the challenger was evaluated against
    (compare-and-swap, :func:`mlops_core.runs.registry.promote`). A live challenger
    (``deployment.challenger``) is not promoted here: :mod:`mlops_core.challenger` judges it.
    """
    from mlops_core.deploy import Deployment

    target = _target(spec, target)
    dep = Deployment(**deployment)
    if dep.extra.get("challenger"):  # live on the canary split: the challenger_verdict step decides
        log.info("v%s of %s stays the live challenger; champion unchanged", dep.version, dep.model_name)
        return dep.to_dict()
    if dep.extra.get("shadow"):  # scored beside the champion: the shadow_verdict step decides
        log.info("v%s of %s stays in shadow; champion unchanged", dep.version, dep.model_name)
        return dep.to_dict()
    expected = registry.check_deployable(dep.model_name, dep.version).evaluated_against
    try:
        with registry.champion_guard(dep.model_name, expected):
            done = target.promote(spec, dep)
    except Exception:
        rollback(spec, deployment, target)
        raise
    registry.set_tags(dep.model_name, dep.version, {"mlops.promoted": "true"})
    return done.to_dict()
