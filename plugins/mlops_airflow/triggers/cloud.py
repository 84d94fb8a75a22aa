"""Triggers for the long waits of cloud steps, so no worker slot is held while a cloud works.

Both poll a core function (a remote training job's state, an endpoint deployment's status) from
the triggerer, in a thread: the cloud SDK clients and Airflow's connection lookup are synchronous.
SageMaker training jobs use the amazon provider's ``SageMakerTrigger`` and Azure ML jobs
:class:`~mlops_airflow.triggers.azureml.AzureMLJobTrigger`; these two cover Vertex AI jobs and every
endpoint target.

A poll that fails transiently (connection error, timeout, HTTP 408/429/5xx, throttling: see
:func:`mlops_core.base.retry.is_transient`) is retried with exponential backoff and jitter; only
``max_transient_errors`` in a row, or transient errors for longer than
``max_transient_seconds``, end the wait with an error event (``"reason": "transient"``). A failed
job or deployment reported by the platform (``"reason": "failed"``) and any other error
(``"reason": "error"``: auth, not found, a bad request) end it at once; ``"reason": "timeout"``
means the platform was still working when ``timeout_seconds`` ran out.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


async def _in_thread(fn: Any, *args: Any) -> Any:
    from asgiref.sync import sync_to_async

    return await sync_to_async(fn)(*args)


class _PollingTrigger(BaseTrigger):
    """Poll ``_poll()`` until it says done, tolerating transient errors within a budget."""

    poll_seconds: float
    timeout_seconds: float
    max_transient_errors: int
    max_transient_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float

    def _retry_kwargs(self) -> dict[str, Any]:
        return {
            "max_transient_errors": self.max_transient_errors,
            "max_transient_seconds": self.max_transient_seconds,
            "retry_base_seconds": self.retry_base_seconds,
            "retry_max_seconds": self.retry_max_seconds,
        }

    def _set_retry(
        self,
        max_transient_errors: int,
        max_transient_seconds: float,
        retry_base_seconds: float,
        retry_max_seconds: float,
    ) -> None:
        self.max_transient_errors, self.max_transient_seconds = (
            int(max_transient_errors),
            float(max_transient_seconds),
        )
        self.retry_base_seconds, self.retry_max_seconds = float(retry_base_seconds), float(retry_max_seconds)

    def _terminal(self) -> tuple[type[BaseException], ...]:
        """Exceptions by which the platform reports a failure (final, never retried)."""
        raise NotImplementedError

    async def _poll_until(
        self, poll: Callable[[], Any], done: Callable[[Any], bool], what: str
    ) -> tuple[str, str, Any]:
        """``("success", "", state)`` or ``("error", reason, message)`` (reason: failed/error/transient/timeout)."""
        from mlops_core.base.retry import TransientBudget, is_transient

        budget = TransientBudget(
            max_errors=self.max_transient_errors,
            max_seconds=self.max_transient_seconds,
            base=self.retry_base_seconds,
            max_delay=self.retry_max_seconds,
            floor=self.poll_seconds,
        )
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            delay = self.poll_seconds
            try:
                state = await _in_thread(poll)
            except self._terminal() as err:
                return "error", "failed", str(err)
            except Exception as err:
                if not is_transient(err):
                    return "error", "error", f"polling {what} failed: {err}"
                wait = budget.failed(err)
                if wait is None:
                    return "error", "transient", f"polling {what}: {budget.exhausted_message(err)}"
                self.log.warning(
                    "polling %s failed transiently (%d in a row): %s; next poll in %.1f s",
                    what,
                    budget.errors,
                    err,
                    wait,
                )
                delay = wait
            else:
                budget.succeeded()
                if done(state):
                    return "success", "", state
            if time.monotonic() > deadline:
                return "error", "timeout", f"{what} still not done after {self.timeout_seconds:.0f} s"
            await asyncio.sleep(delay)


_RETRY_DEFAULTS: dict[str, Any] = {
    "max_transient_errors": 10,
    "max_transient_seconds": 1800.0,
    "retry_base_seconds": 5.0,
    "retry_max_seconds": 300.0,
}


class RemoteJobTrigger(_PollingTrigger):
    """Wait for a remote training job (``gcp``: Vertex AI custom job) to finish.

    Yields ``{"status": "success", "handle": ...}`` or ``{"status": "error", "reason": ...,
    "message": ..., "handle": ...}``.

    :param max_transient_errors: transient poll errors tolerated in a row.
    :param max_transient_seconds: how long polls may keep failing transiently.
    :param retry_base_seconds: first backoff after a transient error (doubled, jittered, at least
        ``poll_seconds``).
    :param retry_max_seconds: cap of one backoff.
    """

    def __init__(
        self,
        cloud: str,
        handle: dict[str, Any],
        poll_seconds: float = 30,
        timeout_seconds: float = 7200,
        max_transient_errors: int = _RETRY_DEFAULTS["max_transient_errors"],
        max_transient_seconds: float = _RETRY_DEFAULTS["max_transient_seconds"],
        retry_base_seconds: float = _RETRY_DEFAULTS["retry_base_seconds"],
        retry_max_seconds: float = _RETRY_DEFAULTS["retry_max_seconds"],
    ):
        super().__init__()
        self.cloud, self.handle = cloud, handle
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds
        self._set_retry(max_transient_errors, max_transient_seconds, retry_base_seconds, retry_max_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cloud": self.cloud,
                "handle": self.handle,
                "poll_seconds": self.poll_seconds,
                "timeout_seconds": self.timeout_seconds,
                **self._retry_kwargs(),
            },
        )

    def _terminal(self) -> tuple[type[BaseException], ...]:
        from mlops_core.model.remote import RemoteJobFailed

        return (RemoteJobFailed,)

    def _state(self) -> str:
        from mlops_airflow.hooks.cloud import clients_for
        from mlops_core.clouds.gcp import client as gcp
        from mlops_core.spec import profiles as clouds

        profile = clouds.resolve(self.cloud)
        if self.cloud != "gcp":
            raise ValueError(f"RemoteJobTrigger polls Vertex AI jobs (cloud gcp), not {self.cloud!r}")
        return str(gcp.training_state(profile, clients_for(profile), self.handle))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_core.model.remote import SUCCEEDED

        status, reason, detail = await self._poll_until(
            self._state, lambda state: state == SUCCEEDED, f"job {self.handle}"
        )
        if status == "success":
            yield TriggerEvent({"status": "success", "handle": self.handle})
        else:
            yield TriggerEvent(
                {"status": "error", "reason": reason, "message": detail, "handle": self.handle}
            )


class EndpointTrigger(_PollingTrigger):
    """Wait until an endpoint deployment is ready (``target.status``), carrying the deployment along.

    Yields ``{"status": "success", "deployment": {...}}`` or ``{"status": "error", "reason": ...,
    "message": ..., "deployment": {...}}``; ``reason`` ``"failed"`` is the only one where the
    platform said the deployment failed (the others leave its outcome unknown).

    :param max_transient_errors: transient poll errors tolerated in a row.
    :param max_transient_seconds: how long polls may keep failing transiently.
    :param retry_base_seconds: first backoff after a transient error (doubled, jittered, at least
        ``poll_seconds``).
    :param retry_max_seconds: cap of one backoff.
    """

    def __init__(
        self,
        cloud: str,
        target: str,
        deployment: dict[str, Any],
        poll_seconds: float = 30,
        timeout_seconds: float = 3600,
        max_transient_errors: int = _RETRY_DEFAULTS["max_transient_errors"],
        max_transient_seconds: float = _RETRY_DEFAULTS["max_transient_seconds"],
        retry_base_seconds: float = _RETRY_DEFAULTS["retry_base_seconds"],
        retry_max_seconds: float = _RETRY_DEFAULTS["retry_max_seconds"],
    ):
        super().__init__()
        self.cloud, self.target, self.deployment = cloud, target, deployment
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds
        self._set_retry(max_transient_errors, max_transient_seconds, retry_base_seconds, retry_max_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cloud": self.cloud,
                "target": self.target,
                "deployment": self.deployment,
                "poll_seconds": self.poll_seconds,
                "timeout_seconds": self.timeout_seconds,
                **self._retry_kwargs(),
            },
        )

    def _terminal(self) -> tuple[type[BaseException], ...]:
        from mlops_core.deploy import DeploymentFailed

        return (DeploymentFailed,)

    def _status(self) -> str:
        from mlops_airflow.hooks.cloud import clients_for
        from mlops_core.deploy import Deployment
        from mlops_core.spec import profiles as clouds
        from mlops_core.targets import get_target

        profile = clouds.resolve(self.cloud)
        clients = clients_for(profile) if profile.name != "local" else None
        target = get_target(self.target, profile, clients)
        return str(target.status(Deployment(**self.deployment)))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_core.deploy import READY

        status, reason, detail = await self._poll_until(
            self._status, lambda state: state == READY, f"endpoint {self.deployment.get('endpoint')}"
        )
        if status == "success":
            yield TriggerEvent({"status": "success", "deployment": {**self.deployment, "state": READY}})
        else:
            yield TriggerEvent(
                {"status": "error", "reason": reason, "message": detail, "deployment": self.deployment}
            )
