"""OpenLineage names for what the steps read and write: one place maps our own records (the
pipeline spec, a lake partition and its manifest version, an MLflow model or model version, a
deployment, the drift event) to OpenLineage datasets.

The names follow OpenLineage's naming conventions where it has one (files and object stores:
``file`` + path, ``s3://bucket`` + key, ``gs://bucket`` + key, ``abfss://container@account...``
+ path) and are ours where it has none:

- an MLflow model, model version or alias: namespace ``mlflow://<tracking host>``, name
  ``models/<name>/<version>`` (a registered version), ``models/<name>@<alias>`` (the alias
  ``champion``: what the ``local`` target deploys and batch scoring reads), ``models/<model id>``
  or ``runs/<run id>/<path>`` (the model a training run logged);
- an endpoint on a cloud target: namespace ``<target>://<cloud profile>``, name the endpoint's;
- the drift event: the drift Asset's URI (``mlops://<pipeline>/drift``) split into namespace
  ``mlops://<pipeline>`` and name ``drift``, with the day it names as its version;
- a file of a DVC source (``source.dvc``): namespace ``dvc+<repository>`` (its credentials
  dropped), name the path in the repository, version the DVC md5 the lake's manifest recorded.

A version (the lake manifest's, the registered model's, the drift day) travels as OpenLineage's
``DatasetVersionDatasetFacet``. Nothing here imports Airflow or OpenLineage at module level:
:func:`operator_lineage` imports the provider's classes when it is called, which only happens
when the OpenLineage provider is installed (its listener calls the operators' facet methods).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec


@dataclass(frozen=True)
class LineageDataset:
    """One OpenLineage dataset: namespace, name and, when known, its version."""

    namespace: str
    name: str
    version: str | None = None


def _host(parts: SplitResult) -> str:
    """``host[:port]`` of a URI, never its user name or password."""
    return f"{parts.hostname or ''}:{parts.port}" if parts.port else parts.hostname or ""


def uri_dataset(uri: str, version: Any = None) -> LineageDataset:
    """A file or object-store URI as OpenLineage names it (``file`` + absolute path for local files;
    ``<scheme>://<bucket or container>`` + the key for stores). Credentials in the URI are dropped."""
    parts = urlsplit(uri)
    scheme = parts.scheme or "file"
    ver = None if version in (None, "") else str(version)
    if scheme == "file":
        return LineageDataset("file", parts.path if parts.scheme else uri, ver)
    host = _host(parts)
    if scheme in ("abfs", "abfss", "az", "adl") and parts.username:  # container@account
        host = f"{parts.username}@{host}"
    return LineageDataset(f"{scheme}://{host}", parts.path.lstrip("/") or "/", ver)


def source_datasets(
    spec: PipelineSpec, ds: str, expand: Any, lookback_days: int | None = None
) -> list[LineageDataset]:
    """The source files a read for ``ds`` covers: one per day of the window in ``files`` mode
    (``{ds}`` in the URI), else the source's URI (a glob stays a glob). ``expand``: ``${VAR}``
    expansion under the step's cloud profile (:func:`mlops_core.base.settings.expand`)."""
    return window_datasets(spec.source, ds, expand, lookback_days)


def labels_datasets(spec: PipelineSpec, ds: str, expand: Any) -> list[LineageDataset]:
    """The labels file(s) (``feedback.uri``) a read of the labels arrived by ``ds`` covers."""
    from mlops_core.monitor.feedback import labels_source

    assert spec.feedback is not None
    return window_datasets(labels_source(spec.feedback), ds, expand)


def window_datasets(
    source: Any, ds: str, expand: Any, lookback_days: int | None = None
) -> list[LineageDataset]:
    """:func:`source_datasets` of any ``SourceSpec`` (the pipeline's source, the labels)."""
    from mlops_core.base import settings

    uri = settings.redact(expand(source.uri))
    if source.partition.mode != "files" or "{ds}" not in uri:
        uris = [uri]
    else:
        day = date.fromisoformat(ds)
        lookback = lookback_days or source.partition.lookback_days
        uris = [uri.replace("{ds}", (day - timedelta(days=i)).isoformat()) for i in range(lookback)]
    if getattr(source, "dvc", None) is None:
        return [uri_dataset(u) for u in uris]
    repo = settings.redact(expand(source.dvc.repo))
    parts = urlsplit(repo)
    if parts.scheme:  # a git URL: no user name or password in the namespace
        repo = parts._replace(netloc=_host(parts)).geturl()
    elif repo.startswith("/"):  # a local repository by its path
        repo = f"file://{repo}"
    return [LineageDataset(f"dvc+{repo}", u.split("://", 1)[-1]) for u in uris]


def with_source_versions(sources: list[LineageDataset], extra: dict[str, Any]) -> list[LineageDataset]:
    """``sources`` with the version the lake's manifest recorded for each (its ``extra``): for a DVC
    source, each file's DVC md5 (the content at the resolved commit). A plain file or object has
    none: ingest records no etag or modification time of what it read, so no version is claimed."""
    files = (extra.get("dvc") or {}).get("files") or []
    md5 = {str(f.get("path")): str(f.get("md5")) for f in files if f.get("md5")}
    return [LineageDataset(d.namespace, d.name, md5.get(d.name, d.version)) for d in sources]


def mlflow_namespace(tracking_uri: str) -> str:
    """``mlflow://<host[:port]>`` of a tracking server; ``mlflow://localhost`` for a local store
    (SQLite, a folder). Never the user name or password of the URI."""
    parts = urlsplit(tracking_uri)
    host = _host(parts)
    if parts.scheme in ("http", "https", "databricks") and host:
        return f"mlflow://{host}"
    return "mlflow://localhost"


def model_dataset(tracking_uri: str, model_uri: str, version: Any = None) -> LineageDataset:
    """An MLflow model URI (``models:/m-123``, ``models:/<name>@<alias>``, ``runs:/<id>/model``) in
    the tracking server's namespace: ``models:/x`` is named ``models/x``, ``runs:/x`` ``runs/x``."""
    scheme, _, rest = model_uri.partition(":/")
    name = f"{scheme}/{rest.lstrip('/')}" if rest else model_uri
    return LineageDataset(mlflow_namespace(tracking_uri), name, None if version is None else str(version))


def model_version_dataset(tracking_uri: str, model_name: str, version: Any) -> LineageDataset:
    """A registered model version: ``models/<name>/<version>``, the version as its facet."""
    return LineageDataset(mlflow_namespace(tracking_uri), f"models/{model_name}/{version}", str(version))


def champion_dataset(tracking_uri: str, model_name: str) -> LineageDataset:
    """The ``champion`` alias: what batch scoring and the drift check read, what promotion moves."""
    return model_dataset(tracking_uri, f"models:/{model_name}@champion")


def alias_dataset(tracking_uri: str, model_name: str, alias: str, version: Any = None) -> LineageDataset:
    """A registry alias (``live_challenger``, ``shadow``, ``champion``): ``models/<name>@<alias>``,
    the name the ``local`` target's deploy gives the endpoint it points at that alias."""
    return model_dataset(tracking_uri, f"models:/{model_name}@{alias}", version)


def job_datasets(body: dict[str, Any]) -> tuple[list[LineageDataset], list[LineageDataset]]:
    """The inputs and outputs an Azure ML job resource declares (``properties.inputs`` /
    ``outputs``, each with a ``uri``), named as :func:`uri_dataset` names them. Literal inputs
    (a number, a string) and outputs with no ``uri`` (the job's default datastore) name nothing."""
    from mlops_core.base import settings

    props = body.get("properties") or {}

    def named(section: Any) -> list[LineageDataset]:
        items = section.values() if isinstance(section, dict) else []
        return [
            uri_dataset(settings.redact(str(v["uri"]))) for v in items if isinstance(v, dict) and v.get("uri")
        ]

    return named(props.get("inputs")), named(props.get("outputs"))


def endpoint_dataset(tracking_uri: str, deployment: dict[str, Any], profile: str) -> LineageDataset:
    """Where a deployment serves: the ``local`` target's endpoint is an MLflow alias (the champion,
    or the live challenger's); a cloud target's, its endpoint in ``<target>://<cloud profile>``."""
    target = str(deployment.get("target") or "local")
    endpoint = str(deployment["endpoint"])
    if target == "local" or endpoint.startswith("models:/"):
        return model_dataset(tracking_uri, endpoint, deployment.get("version"))
    return LineageDataset(f"{target}://{profile}", endpoint, str(deployment.get("version") or "") or None)


def drift_event_dataset(asset_uri: str, ds: Any = None) -> LineageDataset:
    """The drift Asset (``mlops://<pipeline>/drift``) as a dataset; ``ds``, the day the event names."""
    namespace, _, name = asset_uri.rpartition("/")
    return LineageDataset(namespace, name, None if ds in (None, "") else str(ds))


# --- OpenLineage objects (the provider's classes; only called when it is installed) ------------


def openlineage_dataset(record: LineageDataset, *, output: bool = False) -> Any:
    """The OpenLineage ``InputDataset``/``OutputDataset`` of ``record`` (its version as the
    ``version`` dataset facet)."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import DatasetFacet, dataset_version_dataset

    facets: dict[str, DatasetFacet] = {}
    if record.version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(record.version)
    kind = OutputDataset if output else InputDataset
    return kind(namespace=record.namespace, name=record.name, facets=facets)


def operator_lineage(inputs: list[LineageDataset], outputs: list[LineageDataset]) -> Any:
    """The provider's ``OperatorLineage`` for a step's facet methods (duplicates dropped, order kept)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[openlineage_dataset(d) for d in dict.fromkeys(inputs)],
        outputs=[openlineage_dataset(d, output=True) for d in dict.fromkeys(outputs)],
    )
