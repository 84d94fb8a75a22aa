"""Triggers for the long waits of cloud steps, so no worker slot is held while a cloud works.

Both poll a core function (a remote training job's state, an endpoint deployment's status) from
the triggerer, in a thread: the cloud SDK clients and Airflow's connection lookup are synchronous.
SageMaker training jobs use the amazon provider's ``SageMakerTrigger`` and Azure ML jobs
:class:`~mlops_airflow.azureml.AzureMLJobTrigger`; these two cover Vertex AI jobs and every
endpoint target.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def _in_thread(fn: Any, *args: Any) -> Any:
    from asgiref.sync import sync_to_async

    return await sync_to_async(fn)(*args)


class RemoteJobTrigger(BaseTrigger):
    """Wait for a remote training job (``gcp``: Vertex AI custom job) to finish.

    Yields ``{"status": "success", "handle": ...}`` or ``{"status": "error", "message": ...}``.
    """

    def __init__(
        self, cloud: str, handle: dict[str, Any], poll_seconds: float = 30, timeout_seconds: float = 7200
    ):
        super().__init__()
        self.cloud, self.handle = cloud, handle
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cloud": self.cloud,
                "handle": self.handle,
                "poll_seconds": self.poll_seconds,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def _state(self) -> str:
        from mlops_airflow.cloud import clients_for
        from mlops_core import clouds, gcp

        profile = clouds.resolve(self.cloud)
        if self.cloud != "gcp":
            raise ValueError(f"RemoteJobTrigger polls Vertex AI jobs (cloud gcp), not {self.cloud!r}")
        return str(gcp.training_state(profile, clients_for(profile), self.handle))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_core.remote import SUCCEEDED

        deadline = time.monotonic() + self.timeout_seconds
        while True:
            try:
                state = await _in_thread(self._state)
            except Exception as err:
                yield TriggerEvent({"status": "error", "message": str(err), "handle": self.handle})
                return
            if state == SUCCEEDED:
                yield TriggerEvent({"status": "success", "handle": self.handle})
                return
            if time.monotonic() > deadline:
                yield TriggerEvent(
                    {
                        "status": "error",
                        "message": f"job still running after {self.timeout_seconds:.0f} s",
                        "handle": self.handle,
                    }
                )
                return
            await asyncio.sleep(self.poll_seconds)


class EndpointTrigger(BaseTrigger):
    """Wait until an endpoint deployment is ready (``target.status``), carrying the deployment along.

    Yields ``{"status": "success", "deployment": {...}}`` or ``{"status": "error", "message": ...}``.
    """

    def __init__(
        self,
        cloud: str,
        target: str,
        deployment: dict[str, Any],
        poll_seconds: float = 30,
        timeout_seconds: float = 3600,
    ):
        super().__init__()
        self.cloud, self.target, self.deployment = cloud, target, deployment
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cloud": self.cloud,
                "target": self.target,
                "deployment": self.deployment,
                "poll_seconds": self.poll_seconds,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def _status(self) -> str:
        from mlops_airflow.cloud import clients_for
        from mlops_core import clouds
        from mlops_core.deploy import Deployment, get_target

        profile = clouds.resolve(self.cloud)
        clients = clients_for(profile) if profile.name != "local" else None
        target = get_target(self.target, profile, clients)
        return str(target.status(Deployment(**self.deployment)))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_core.deploy import READY

        deadline = time.monotonic() + self.timeout_seconds
        while True:
            try:
                state = await _in_thread(self._status)
            except Exception as err:
                yield TriggerEvent({"status": "error", "message": str(err), "deployment": self.deployment})
                return
            if state == READY:
                yield TriggerEvent({"status": "success", "deployment": {**self.deployment, "state": READY}})
                return
            if time.monotonic() > deadline:
                yield TriggerEvent(
                    {
                        "status": "error",
                        "message": f"endpoint {self.deployment.get('endpoint')} not ready after {self.timeout_seconds:.0f} s",
                        "deployment": self.deployment,
                    }
                )
                return
            await asyncio.sleep(self.poll_seconds)
