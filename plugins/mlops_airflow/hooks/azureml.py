"""Azure ML for Airflow: a connection type, a hook, a deferrable command-job operator and its trigger.

Built to the standard of the Amazon provider's SageMaker operators (``SageMakerTrainingOperator``
and ``SageMakerTrigger``): create-or-attach by job name, ``deferrable`` defaulting to
``[operators] default_deferrable``, polling in the triggerer, ``execute_complete`` failing with
the platform's message. The REST calls themselves live in :mod:`mlops_core.clouds.azure.client` (no Airflow
there), so the same code serves the pipeline steps and these operators.

Connection ``azure_ml`` (a service principal): login = client (application) id, password =
client secret, extras ``tenant_id``, ``subscription_id``, ``resource_group``, ``workspace``, and
for clouds other than Azure's public one:

* ``api_endpoint``: the ARM root (``https://management.usgovcloudapi.net`` for Azure US
  Government, ``https://management.chinacloudapi.cn`` for Azure China); the ARM token is
  requested for ``<api_endpoint>/.default``, the audience that cloud's ARM accepts;
* ``authority``: the Microsoft Entra authority host that issues the tokens
  (``login.microsoftonline.us``, ``login.chinacloudapi.cn``; default ``login.microsoftonline.com``);
* ``disable_instance_discovery``: ``true`` for an authority Entra's instance discovery does not
  know (Azure Stack Hub, private clouds): azure-identity then skips the metadata lookup at
  ``login.microsoft.com`` and trusts the configured authority as it is.

Nothing heavy is imported at module level (``azure.identity`` loads when a session is built).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator, conf
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_airflow.provider import CONN_FIELDS, CONN_TYPE, UI_FIELD_BEHAVIOUR

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import requests
    from airflow.sdk import Connection, Context

    from mlops_core.clouds.azure.client import AzureMLClient

ARM_SCOPE = "https://management.azure.com/.default"
MONITOR_SCOPE = "https://monitoring.azure.com/.default"


class _BearerAuth:
    """``requests`` auth adding a fresh Azure AD token per request (tokens expire after ~1 h).

    A request that carries its own ``Authorization`` (an endpoint key for scoring) keeps it, so the
    Azure AD token never leaves for a scoring URI.
    """

    def __init__(self, credential: Any, scope: str):
        self.credential, self.scope = credential, scope

    def __call__(self, request: Any) -> Any:
        if "Authorization" not in request.headers:
            token = self.credential.get_token(self.scope).token  # azure.identity caches until expiry
            request.headers["Authorization"] = f"Bearer {token}"
        return request


class AzureMLHook(BaseHook):
    """Authorised HTTP sessions and an :class:`~mlops_core.clouds.azure.client.AzureMLClient` from an ``azure_ml`` connection.

    :param azure_ml_conn_id: the connection (a service principal).
    :param subscription_id: overrides the connection's extra ``subscription_id``.
    :param resource_group: overrides the connection's extra ``resource_group``.
    :param workspace: overrides the connection's extra ``workspace``.
    :param api_root: ARM root (sovereign clouds); overrides the connection's extra ``api_endpoint``,
        default ``https://management.azure.com``.
    """

    conn_name_attr = "azure_ml_conn_id"
    default_conn_name = "azure_ml_default"
    conn_type = CONN_TYPE
    hook_name = "Azure ML"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (Airflow < 3.2; newer versions read ``CONN_FIELDS``)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, StringField

        return {
            name: (
                BooleanField(lazy_gettext(field["label"]))
                if "boolean" in field["schema"]["type"]
                else StringField(lazy_gettext(field["label"]), widget=BS3TextFieldWidget())
            )
            for name, field in CONN_FIELDS.items()
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide host/port/schema; login and password are the service principal's id and secret."""
        return {key: (dict(v) if isinstance(v, dict) else list(v)) for key, v in UI_FIELD_BEHAVIOUR.items()}

    def __init__(
        self,
        azure_ml_conn_id: str = default_conn_name,
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        api_root: str | None = None,
        connection: Connection | None = None,
    ) -> None:
        super().__init__()
        self.azure_ml_conn_id = azure_ml_conn_id
        self.subscription_id, self.resource_group, self.workspace = subscription_id, resource_group, workspace
        self.api_root = api_root
        self._connection = connection
        self._sessions: dict[str, requests.Session] = {}

    # -- connection -------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.get_connection(self.azure_ml_conn_id)
        return self._connection

    async def aload_connection(self) -> None:
        """Fetch the connection without blocking the triggerer's event loop."""
        from airflow.providers.common.compat.connection import get_async_connection

        if self._connection is None:
            self._connection = await get_async_connection(self.azure_ml_conn_id, hook=self)

    def extra(self, name: str) -> str | None:
        """An extra field, plain (``tenant_id``) or as older UIs prefix it (``extra__azure_ml__tenant_id``)."""
        extras = self.connection.extra_dejson
        value = extras.get(name) or extras.get(f"extra__{CONN_TYPE}__{name}")
        return str(value) if value else None

    def flag(self, name: str) -> bool:
        """A boolean extra: JSON ``true`` or the strings ``true``/``1``/``yes``/``on``."""
        value = self.extra(name)
        return value is not None and value.strip().lower() in {"true", "1", "yes", "on"}

    @property
    def arm_root(self) -> str | None:
        """The ARM root: the hook's ``api_root``, else the connection's ``api_endpoint`` (None: public ARM)."""
        root = self.api_root or self.extra("api_endpoint")
        return root.rstrip("/") if root else None

    @property
    def arm_scope(self) -> str:
        """The token scope of ARM calls: ``<arm root>/.default`` (the audience each cloud's ARM accepts)."""
        return f"{self.arm_root}/.default" if self.arm_root else ARM_SCOPE

    def _required(self, name: str, override: str | None) -> str:
        value = override or self.extra(name)
        if not value:
            raise AirflowException(
                f"connection {self.azure_ml_conn_id!r} has no {name}: add it to the connection's extras "
                f"(or pass {name}= to the hook/operator)"
            )
        return value

    # -- sessions and clients -----------------------------------------------------------------

    def get_credential(self) -> Any:
        """``ClientSecretCredential`` of the connection's service principal (extras ``authority``,
        ``disable_instance_discovery`` passed on: see the module docstring)."""
        from azure.identity import ClientSecretCredential

        conn = self.connection
        if not conn.login or not conn.password:
            raise AirflowException(
                f"connection {self.azure_ml_conn_id!r} needs login (client id) and password (client secret)"
            )
        options: dict[str, Any] = {}
        if self.extra("authority"):
            options["authority"] = self.extra("authority")
        if self.flag("disable_instance_discovery"):
            options["disable_instance_discovery"] = True
        return ClientSecretCredential(
            tenant_id=self._required("tenant_id", None),
            client_id=conn.login,
            client_secret=conn.password,
            **options,
        )

    def get_session(self, scope: str | None = None) -> requests.Session:
        """A ``requests.Session`` adding a bearer token for ``scope`` to each request (one per scope).

        ``scope`` defaults to :attr:`arm_scope`; an ARM session names its root (``api_root``) so
        :func:`mlops_core.clouds.azure.client.client_for` calls the ARM its tokens are for.
        """
        scope = scope or self.arm_scope
        if scope not in self._sessions:
            import requests

            session = requests.Session()
            session.auth = _BearerAuth(self.get_credential(), scope)
            session.headers["User-Agent"] = "airflow-mlops"
            if scope == self.arm_scope:
                session.api_root = self.arm_root  # type: ignore[attr-defined]
            self._sessions[scope] = session
        return self._sessions[scope]

    def get_conn(self) -> requests.Session:
        return self.get_session()

    def clients(self, service: str) -> requests.Session:
        """The :data:`mlops_core.spec.profiles.ClientFactory` of the azure profile.

        ``monitor``: a session for Azure Monitor's metric ingestion; anything else
        (``azureml``): a session for ARM.
        """
        return self.get_session(MONITOR_SCOPE if service == "monitor" else self.arm_scope)

    def get_client(self) -> AzureMLClient:
        """The connection's workspace (arguments of the hook override its extras)."""
        from mlops_core.clouds.azure.client import AzureMLClient

        return AzureMLClient(
            self.clients("azureml"),
            self._required("subscription_id", self.subscription_id),
            self._required("resource_group", self.resource_group),
            self._required("workspace", self.workspace),
            api_root=self.arm_root,
        )

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: read the workspace."""
        try:
            client = self.get_client()
            client.call("GET", f"{client.api_root}{client.workspace_id}")
        except Exception as exc:
            return False, str(exc)
        return True, "the workspace is readable"


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


class AzureMLCommandJobOperator(BaseOperator):
    """Run an Azure ML command job and wait for it (deferrable).

    The job is PUT under ``job_name`` unless a job of that name exists, in which case the task
    attaches to it: a retried or resumed task never starts a second job. Returns
    ``{"job_name", "status"}``.

    :param job_name: the Azure ML job name (templated); choose it per run and try, e.g.
        ``"train-{{ ds_nodash }}-t{{ ti.try_number }}"``.
    :param body: the job resource (``{"properties": {"jobType": "Command", ...}}``; templated);
        see :func:`mlops_core.clouds.azure.client.command_job_body`.
    :param azure_ml_conn_id: the ``azure_ml`` connection.
    :param subscription_id/resource_group/workspace: override the connection's extras.
    :param wait_for_completion: wait until the job ends (else return once it is submitted).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poke_interval: seconds between status polls.
    :param max_attempts: polls before giving up.
    """

    template_fields: Sequence[str] = ("job_name", "body")
    template_fields_renderers = {"body": "json"}
    ui_color = "#0078d4"

    def __init__(
        self,
        *,
        job_name: str,
        body: dict[str, Any],
        azure_ml_conn_id: str = AzureMLHook.default_conn_name,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        api_root: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30.0,
        max_attempts: int = 480,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name, self.body, self.azure_ml_conn_id = job_name, body, azure_ml_conn_id
        self.subscription_id, self.resource_group, self.workspace = subscription_id, resource_group, workspace
        self.api_root = api_root
        self.wait_for_completion, self.deferrable = wait_for_completion, deferrable
        self.poke_interval, self.max_attempts = poke_interval, max_attempts

    @property
    def hook(self) -> AzureMLHook:
        return AzureMLHook(
            self.azure_ml_conn_id,
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            workspace=self.workspace,
            api_root=self.api_root,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.clouds.azure.client import job_state_of
        from mlops_core.model.remote import SUCCEEDED, RemoteJobFailed

        client = self.hook.get_client()
        job = client.submit_job(self.job_name, self.body)
        self.log.info(
            "Azure ML job %s: %s", self.job_name, job.get("properties", {}).get("status", "submitted")
        )
        if not self.wait_for_completion:
            return {"job_name": self.job_name, "status": "submitted"}
        try:
            if job_state_of(self.job_name, job) == SUCCEEDED:
                return {"job_name": self.job_name, "status": "Completed"}
            if self.deferrable:
                self.defer(
                    trigger=AzureMLJobTrigger(
                        job_name=self.job_name,
                        azure_ml_conn_id=self.azure_ml_conn_id,
                        poke_interval=self.poke_interval,
                        max_attempts=self.max_attempts,
                        subscription_id=self.subscription_id,
                        resource_group=self.resource_group,
                        workspace=self.workspace,
                        api_root=self.api_root,
                    ),
                    method_name="execute_complete",
                )
            for _ in range(self.max_attempts):
                time.sleep(self.poke_interval)
                if client.job_state(self.job_name) == SUCCEEDED:
                    return {"job_name": self.job_name, "status": "Completed"}
        except RemoteJobFailed as exc:
            raise AirflowException(str(exc)) from None
        raise AirflowException(
            f"Azure ML job {self.job_name} still running after {self.max_attempts} polls; "
            "raise max_attempts or use deferrable=True"
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: fail with the platform's message, or return the job's result."""
        if event is None:
            raise AirflowException(f"the trigger of Azure ML job {self.job_name} returned no event")
        if event.get("status") != "success":
            raise AirflowException(str(event.get("message") or f"Azure ML job failed: {event}"))
        self.log.info("Azure ML job %s completed", event.get("job_name"))
        return {"job_name": event.get("job_name", self.job_name), "status": "Completed"}
