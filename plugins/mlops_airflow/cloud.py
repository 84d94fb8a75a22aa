"""The Airflow side of cloud profiles: connections, ObjectStoragePath, SDK clients, metric export.

:func:`cloud_context` is entered around every step's ``execute`` (see
:class:`~mlops_airflow.operators.MlopsStep`): inside it, ``${MLOPS_LAKE}`` and ``${MLOPS_LANDING}``
are the profile's roots, and every ``s3://``, ``gs://`` or ``abfs://`` URI the core opens is an
Airflow ``ObjectStoragePath`` bound to the profile's connection (or the source's own
``source.conn_id``). Credentials therefore only ever come from Airflow connections.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fsspec import AbstractFileSystem

    from mlops_core.clouds import ClientFactory, CloudProfile
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

# URI prefix -> Airflow connection id for the URIs the current step opens (the longest prefix
# wins; a bare scheme such as "s3://" is the fallback for URIs under no known root)
_CONNS: ContextVar[dict[str, str | None]] = ContextVar("mlops_conns", default={})  # noqa: B039 - never mutated

_SCHEME_ALIASES = {"gcs": "gs", "abfss": "abfs", "s3a": "s3"}


def _scheme(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    scheme = head.lower() if sep else "file"
    return _SCHEME_ALIASES.get(scheme, scheme)


def _resolve(uri: str, storage_options: dict[str, Any] | None) -> tuple[AbstractFileSystem, str] | None:
    """``ObjectStoragePath`` for remote URIs, with the connection the current step set for its scheme."""
    scheme = _scheme(uri)
    if scheme == "file":
        return None
    from airflow.sdk import ObjectStoragePath

    conn_id = connection_for(uri)
    path = ObjectStoragePath(uri, conn_id=conn_id, **(storage_options or {}))
    return path.fs, path.path


def _prefix(uri: str) -> str:
    scheme = _scheme(uri)
    rest = uri.partition("://")[2] if "://" in uri else uri
    return f"{scheme}://{rest.rstrip('/')}/"


def connection_for(uri: str) -> str | None:
    """The connection the current step uses for ``uri``: the source's only under the source's folder,
    the profile's for the lake, the landing zone and anything else."""
    conns = _CONNS.get()
    target = _prefix(uri)
    matches = [p for p in conns if target.startswith(p)]
    if matches:
        return conns[max(matches, key=len)]
    return conns.get(f"{_scheme(uri)}://")


def install() -> None:
    """Route the core's URIs through ObjectStoragePath (idempotent; once per process is enough)."""
    from mlops_core import storage

    storage.set_resolver(_resolve)


def profile_of(spec: PipelineSpec) -> CloudProfile:
    from mlops_core import clouds

    return clouds.resolve(spec.cloud)


@contextmanager
def cloud_context(spec: PipelineSpec, source_conn_id: str | None = None) -> Iterator[CloudProfile]:
    """The spec's profile is active: its roots, its connection for lake and landing, the source's.

    The source's connection (``source_conn_id``, else ``source.conn_id``) applies to the source's
    own folder only: lake writes always use the profile's connection, so a read-only partner
    connection never writes the lake.
    """
    from mlops_core import clouds

    install()
    profile = profile_of(spec)
    conns: dict[str, str | None] = {}
    for root in (profile.lake, profile.landing):
        conns[f"{_scheme(root)}://"] = profile.conn_id
        conns[_prefix(root)] = profile.conn_id
    with clouds.using(profile):
        from mlops_core.settings import expand

        source = expand(spec.source.uri.split("{ds}", 1)[0])  # files mode: the folder before {ds}
        folder = source.rsplit("/", 1)[0]
        source_conn = (
            source_conn_id if source_conn_id not in (None, "", "None") else None
        ) or spec.source.conn_id
        if source_conn:
            conns[_prefix(folder)] = source_conn
        conns.setdefault(f"{_scheme(source)}://", profile.conn_id)
        token = _CONNS.set(conns)
        try:
            yield profile
        finally:
            _CONNS.reset(token)


def clients_for(profile: CloudProfile) -> ClientFactory:
    """SDK clients from the profile's Airflow connection.

    AWS: boto3 clients from ``AwsBaseHook`` (region and endpoint from the connection). Google
    Cloud: an ``AuthorizedSession`` from ``GoogleBaseHook``'s credentials. Azure: the Azure ML
    connection's service principal (:class:`~mlops_airflow.azureml.AzureMLHook`).
    """
    if profile.name == "aws":
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        region = profile.settings.get("region") or None

        def aws(service: str) -> Any:
            return AwsBaseHook(aws_conn_id=profile.conn_id, client_type=service, region_name=region).conn

        return aws
    if profile.name == "gcp":
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(
            GoogleBaseHook(gcp_conn_id=profile.conn_id or "google_cloud_default").get_credentials()
        )
        return lambda service: session
    if profile.name == "azure":
        from mlops_airflow.azureml import AzureMLHook

        return AzureMLHook(azure_ml_conn_id=profile.setting("ml_conn_id")).clients
    raise ValueError(f"cloud {profile.name!r} has no API clients (the local profile needs none)")


def export_metrics(
    profile: CloudProfile, pipeline: str, metrics: dict[str, Any], dimensions: dict[str, str]
) -> None:
    """Also send ``metrics`` to the profile's monitoring service (MLflow has them already).

    A failure is logged, never raised: monitoring export must not fail a model's lifecycle.
    """
    if profile.monitoring_export == "none":
        return
    values = {
        k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    try:
        clients = clients_for(profile)
        if profile.monitoring_export == "cloudwatch":
            from mlops_core import aws

            aws.put_metrics(profile, clients, pipeline, values, dimensions)
        elif profile.monitoring_export == "cloud_monitoring":
            from mlops_core import gcp

            gcp.write_metrics(profile, clients, pipeline, values, dimensions)
        elif profile.monitoring_export == "azure_monitor":
            from mlops_core import azure

            azure.write_metrics(profile, clients, pipeline, values, dimensions)
        log.info("exported %d metric(s) of %s to %s", len(values), pipeline, profile.monitoring_export)
    except Exception:
        log.exception("could not export metrics of %s to %s", pipeline, profile.monitoring_export)
