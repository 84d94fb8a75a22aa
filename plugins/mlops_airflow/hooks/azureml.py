"""Azure ML for Airflow: the ``azure_ml`` connection type and its hook.

The hook gives authorised HTTP sessions and an Azure ML client; the deferrable command-job
operator is :mod:`mlops_airflow.operators.azureml`, its trigger :mod:`mlops_airflow.triggers.azureml`
(the provider layout of the Amazon provider's SageMaker hook, operators and triggers). The REST
calls themselves live in :mod:`mlops_core.clouds.azure.client` (no Airflow there), so the same
code serves the pipeline steps and these operators.

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

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

from mlops_airflow.provider import CONN_FIELDS, CONN_TYPE, UI_FIELD_BEHAVIOUR

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Connection

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
