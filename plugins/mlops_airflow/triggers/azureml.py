"""The trigger of an Azure ML job: polls it in the triggerer until it completes or fails.

Built to the standard of the Amazon provider's ``SageMakerTrigger``; the job is started by
:class:`~mlops_airflow.operators.azureml.AzureMLCommandJobOperator` or by the pipeline's ``train``
and ``search`` steps (:mod:`mlops_airflow.operators.remote`), and read through
:class:`~mlops_airflow.hooks.azureml.AzureMLHook`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_airflow.hooks.azureml import AzureMLHook

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mlops_core.clouds.azure.client import AzureMLClient


class AzureMLJobTrigger(BaseTrigger):
    """Poll an Azure ML job in the triggerer until it completes, fails or ``max_attempts`` run out.

    A poll that fails transiently (connection error, timeout, HTTP 408/429/5xx:
    :func:`mlops_core.base.retry.is_transient`) is retried with exponential backoff and jitter, and
    counts as a poll; ``max_transient_errors`` in a row, or transient errors for longer than
    ``max_transient_seconds``, end the wait. Only a job the platform reports Failed/Canceled, or a
    non-transient error (auth, not found, bad request), ends it at once.

    Yields one event ``{"status": "success" | "error", "job_name", "message"}``; error events add
    ``"reason"``: ``failed`` (the platform's verdict), ``error``, ``transient`` or ``timeout``.

    :param max_transient_errors: transient poll errors tolerated in a row.
    :param max_transient_seconds: how long polls may keep failing transiently.
    :param retry_base_seconds: first backoff after a transient error (doubled, jittered, at least
        ``poke_interval``).
    :param retry_max_seconds: cap of one backoff.
    """

    def __init__(
        self,
        job_name: str,
        azure_ml_conn_id: str = AzureMLHook.default_conn_name,
        poke_interval: float = 30.0,
        max_attempts: int = 480,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        api_root: str | None = None,
        max_transient_errors: int = 10,
        max_transient_seconds: float = 1800.0,
        retry_base_seconds: float = 5.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        super().__init__()
        self.job_name, self.azure_ml_conn_id = job_name, azure_ml_conn_id
        self.poke_interval, self.max_attempts = float(poke_interval), int(max_attempts)
        self.subscription_id, self.resource_group, self.workspace = subscription_id, resource_group, workspace
        self.api_root = api_root
        self.max_transient_errors, self.max_transient_seconds = (
            int(max_transient_errors),
            float(max_transient_seconds),
        )
        self.retry_base_seconds, self.retry_max_seconds = float(retry_base_seconds), float(retry_max_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "azure_ml_conn_id": self.azure_ml_conn_id,
                "poke_interval": self.poke_interval,
                "max_attempts": self.max_attempts,
                "subscription_id": self.subscription_id,
                "resource_group": self.resource_group,
                "workspace": self.workspace,
                "api_root": self.api_root,
                "max_transient_errors": self.max_transient_errors,
                "max_transient_seconds": self.max_transient_seconds,
                "retry_base_seconds": self.retry_base_seconds,
                "retry_max_seconds": self.retry_max_seconds,
            },
        )

    def hook(self) -> AzureMLHook:
        return AzureMLHook(
            self.azure_ml_conn_id,
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            workspace=self.workspace,
            api_root=self.api_root,
        )

    def _event(self, status: str, message: str, reason: str | None = None) -> TriggerEvent:
        payload = {"status": status, "job_name": self.job_name, "message": message}
        if reason:
            payload["reason"] = reason
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_core.model.remote import RemoteJobFailed

        try:
            hook = self.hook()
            await hook.aload_connection()
            client = await asyncio.to_thread(hook.get_client)
            event = await self._poll(client)
        except RemoteJobFailed as exc:
            event = self._event("error", str(exc), "failed")
        except Exception as exc:  # an event, not a crash: execute_complete reports it on the task
            event = self._event("error", f"polling Azure ML job {self.job_name} failed: {exc}", "error")
        yield event

    async def _poll(self, client: AzureMLClient) -> TriggerEvent:
        """Poll until done; transient errors are waited out within the budget, others propagate."""
        from mlops_core.base.retry import TransientBudget, is_transient
        from mlops_core.model.remote import SUCCEEDED

        budget = TransientBudget(
            max_errors=self.max_transient_errors,
            max_seconds=self.max_transient_seconds,
            base=self.retry_base_seconds,
            max_delay=self.retry_max_seconds,
            floor=self.poke_interval,
        )
        for attempt in range(1, self.max_attempts + 1):
            delay = self.poke_interval
            try:
                state = await asyncio.to_thread(client.job_state, self.job_name)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                wait = budget.failed(exc)
                if wait is None:
                    return self._event(
                        "error",
                        f"polling Azure ML job {self.job_name}: {budget.exhausted_message(exc)}",
                        "transient",
                    )
                self.log.warning(
                    "polling Azure ML job %s failed transiently (%d in a row): %s; next poll in %.1f s",
                    self.job_name,
                    budget.errors,
                    exc,
                    wait,
                )
                delay = wait
            else:
                budget.succeeded()
                if state == SUCCEEDED:
                    return self._event("success", f"Azure ML job {self.job_name} completed")
                self.log.info(
                    "Azure ML job %s still running (poll %d/%d)", self.job_name, attempt, self.max_attempts
                )
            if attempt < self.max_attempts:
                await asyncio.sleep(delay)
        return self._event(
            "error",
            f"Azure ML job {self.job_name} still running after {self.max_attempts} polls "
            f"{self.poke_interval:g} s apart; raise max_attempts or poke_interval",
            "timeout",
        )
