"""The Airflow side of cloud profiles: connections, ObjectStoragePath, SDK clients, metric export.

:func:`cloud_context` is entered around every step's ``execute`` (see
:class:`~mlops_airflow.operators.base.MlopsStep`): inside it, ``${MLOPS_LAKE}`` and ``${MLOPS_LANDING}``
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

    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

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


def profile_of(spec: PipelineSpec) -> CloudProfile:
    from mlops_core.spec import profiles as clouds

    return clouds.resolve(spec.cloud)


@contextmanager
def cloud_context(spec: PipelineSpec, source_conn_id: str | None = None) -> Iterator[CloudProfile]:
    """The spec's profile is active: its roots, its connection for lake and landing, the source's.

    The source's connection (``source_conn_id``, else ``source.conn_id``) applies to the source's
    own folder only: lake writes always use the profile's connection, so a read-only partner
    connection never writes the lake.
    """
    from mlops_core.data import filesystems
    from mlops_core.spec import profiles as clouds

    profile = profile_of(spec)
    conns: dict[str, str | None] = {}
    for root in (profile.lake, profile.landing):
        conns[f"{_scheme(root)}://"] = profile.conn_id
        conns[_prefix(root)] = profile.conn_id
    # the core's URIs go through ObjectStoragePath (and the connections below) in this block only
    with clouds.using(profile), filesystems.resolving(_resolve):
        from mlops_core.base.settings import expand

        source = expand(spec.source.uri.split("{ds}", 1)[0])  # files mode: the folder before {ds}
        folder = source.rsplit("/", 1)[0]
        source_conn = (
            source_conn_id if source_conn_id not in (None, "", "None") else None
        ) or spec.source.conn_id
        if source_conn:
            conns[_prefix(folder)] = source_conn
        conns.setdefault(f"{_scheme(source)}://", profile.conn_id)
        if spec.feedback is not None and spec.feedback.conn_id:  # the labels' folder, likewise
            labels = expand(spec.feedback.uri.split("{ds}", 1)[0]).rsplit("/", 1)[0]
            conns[_prefix(labels)] = spec.feedback.conn_id
        token = _CONNS.set(conns)
        try:
            yield profile
        finally:
            _CONNS.reset(token)


def clients_for(profile: CloudProfile) -> ClientFactory:
    """SDK clients from the profile's Airflow connections, each built when first asked for.

    AWS: boto3 clients from ``AwsBaseHook`` (region and endpoint from the connection). Google
    Cloud: an ``AuthorizedSession`` from ``GoogleBaseHook``'s credentials. Azure: the Azure ML
    connection's service principal (:class:`~mlops_airflow.hooks.azureml.AzureMLHook`). On every cloud,
    ``clients("kubernetes")`` is a ``kubernetes.client.CustomObjectsApi`` on the cluster of
    ``settings.kubernetes_conn_id`` (:func:`kubernetes_client`, the ``kserve`` target's client).
    Lazily: a pipeline deploying to KServe on GKE needs no Google Cloud connection for it.
    """
    if profile.name not in ("aws", "gcp", "azure"):
        raise ValueError(f"cloud {profile.name!r} has no API clients (the local profile needs none)")
    built: dict[str, Any] = {}

    def clients(service: str) -> Any:
        if service == "kubernetes":
            if "kubernetes" not in built:
                built["kubernetes"] = kubernetes_client(profile)
            return built["kubernetes"]
        if "platform" not in built:
            built["platform"] = _platform_clients(profile)
        return built["platform"](service)

    return clients


def kubernetes_client(profile: CloudProfile) -> Any:
    """``CustomObjectsApi`` on the API client of ``KubernetesHook(conn_id=settings.kubernetes_conn_id)``.

    The connection (type *Kubernetes Cluster Connection*) holds the kubeconfig, its path, or
    in-cluster configuration; nothing else reads a cluster credential. Default connection id:
    ``kubernetes_default`` (the hook's, which falls back to in-cluster or ``~/.kube/config``).
    """
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    hook = KubernetesHook(
        conn_id=profile.settings.get("kubernetes_conn_id") or KubernetesHook.default_conn_name
    )
    return client.CustomObjectsApi(api_client=hook.api_client)


def _platform_clients(profile: CloudProfile) -> ClientFactory:
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
        from mlops_airflow.hooks.azureml import AzureMLHook

        return AzureMLHook(azure_ml_conn_id=profile.setting("ml_conn_id")).clients
    raise ValueError(f"cloud {profile.name!r} has no API clients (the local profile needs none)")


def export_metrics(
    profile: CloudProfile,
    pipeline: str,
    metrics: dict[str, Any],
    dimensions: dict[str, str],
    *,
    spec: PipelineSpec | None = None,
) -> None:
    """Also send ``metrics`` to the profile's monitoring service (MLflow has them already).

    A failure is logged, never raised: monitoring export must not fail a model's lifecycle.

    :param spec: the pipeline; with ``alerts.metric_alarm``, exporting its realized metric
        (``realized_<metric>``) also creates or updates the alarm on it (:func:`ensure_metric_alarm`).
    """
    if profile.monitoring_export == "none":
        return
    values = {
        k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    try:
        clients = clients_for(profile)
        if profile.monitoring_export == "cloudwatch":
            from mlops_core.clouds.aws import training as aws

            aws.put_metrics(profile, clients, pipeline, values, dimensions)
        elif profile.monitoring_export == "cloud_monitoring":
            from mlops_core.clouds.gcp import monitoring as gcp

            gcp.write_metrics(profile, clients, pipeline, values, dimensions)
        elif profile.monitoring_export == "azure_monitor":
            from mlops_core.clouds.azure import monitor as azure

            azure.write_metrics(profile, clients, pipeline, values, dimensions)
        log.info("exported %d metric(s) of %s to %s", len(values), pipeline, profile.monitoring_export)
    except Exception:
        log.exception("could not export metrics of %s to %s", pipeline, profile.monitoring_export)
    if spec is not None:
        ensure_metric_alarm(profile, spec, values, dimensions)


def realized_alarm(spec: PipelineSpec) -> tuple[str, float, bool] | None:
    """(metric, threshold, higher is better) of the alarm on the realized metric, or None.

    The metric is ``feedback.decay.metric`` (default: the primary one); the threshold its decay
    floor, ``feedback.decay.floor``, else ``evaluation.floors[metric]``. No feedback or no floor:
    no alarm (``max_drop`` is relative to each champion's holdout, not a fixed threshold).
    """
    from mlops_core.spec.catalog import METRICS

    if spec.feedback is None:
        return None
    decay = spec.feedback.decay
    metric = decay.metric or spec.evaluation.primary_metric
    floor = decay.floor if decay.floor is not None else spec.evaluation.floors.get(metric)
    if floor is None:
        return None
    return metric, float(floor), METRICS[metric].higher_is_better


def ensure_metric_alarm(
    profile: CloudProfile, spec: PipelineSpec, metrics: dict[str, float], dimensions: dict[str, str]
) -> str | None:
    """Create or update the alarm on ``realized_<metric>`` when ``metrics`` exports it.

    CloudWatch: a ``PutMetricAlarm`` whose actions are ``alerts.sns_topic_arn``; Cloud Monitoring:
    an alert policy; Azure Monitor: a metric alert rule (see :mod:`mlops_core.clouds.aws.training`,
    :mod:`mlops_core.clouds.gcp.monitoring`, :mod:`mlops_core.clouds.azure.monitor`). Each watches the metric with exactly the dimensions it is exported with. Returns
    the alarm's name (None: nothing to watch). A failure is logged, never raised.
    """
    if spec.alerts is None or not spec.alerts.metric_alarm or profile.monitoring_export == "none":
        return None
    found = realized_alarm(spec)
    if found is None:
        log.info("alerts.metric_alarm of %s: no floor for the realized metric, so no alarm", spec.name)
        return None
    metric, floor, higher = found
    name = f"realized_{metric}"
    if name not in metrics:
        return None
    side = "below" if higher else "above"
    description = (
        f"mlops pipeline {spec.name}: the champion's realized {metric} (on labels that arrived "
        f"{spec.feedback.delay_days if spec.feedback else 0} day(s) after prediction) is {side} its floor {floor:g}"
    )
    try:
        alarm = _put_alarm(profile, spec, (name, floor, higher), dimensions, description)
    except Exception:
        log.exception("could not create or update the %s alarm of %s", name, spec.name)
        return None
    log.info("alarm %s watches %s of %s (%s %g)", alarm, name, spec.name, side, floor)
    return alarm


def _put_alarm(
    profile: CloudProfile,
    spec: PipelineSpec,
    watched: tuple[str, float, bool],
    dimensions: dict[str, str],
    description: str,
) -> str:
    """Create or update the profile's alarm on ``watched`` (metric, threshold, higher is better); its name."""
    name, floor, higher = watched
    clients = clients_for(profile)
    if profile.monitoring_export == "cloudwatch":
        from mlops_core.clouds.aws import training as aws

        request = aws.metric_alarm_request(
            profile,
            spec.name,
            name,
            floor,
            higher_is_better=higher,
            dimensions=dimensions,
            topic_arn=spec.alerts.sns_topic_arn if spec.alerts else None,
            description=description,
        )
        return aws.put_metric_alarm(clients, request)
    if profile.monitoring_export == "cloud_monitoring":
        from mlops_core.clouds.gcp import monitoring as gcp

        body = gcp.alert_policy_body(
            profile,
            spec.name,
            name,
            floor,
            higher_is_better=higher,
            labels=dimensions,
            description=description,
        )
        return str(gcp.upsert_alert_policy(profile, clients, body).get("name") or body["displayName"])
    from mlops_core.clouds.azure import monitor as azure

    alarm = azure.metric_alert_name(spec.name, name)
    body = azure.metric_alert_body(
        profile,
        spec.name,
        name,
        floor,
        higher_is_better=higher,
        dims=dimensions,
        description=description,
    )
    azure.put_metric_alert(profile, clients, alarm, body)
    return alarm
