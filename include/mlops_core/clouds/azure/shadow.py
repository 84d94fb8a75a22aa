"""``deployment.shadow`` with ``mirror_percent`` on Azure ML: the shadow judged on mirrored live requests.

* :func:`start` (the deploy of a version in shadow): the version's Azure ML model (as a deploy
  registers it), one ``uri_folder`` data asset per collection (``model_inputs``, ``model_outputs``)
  on the workspace's ``workspaceblobstore`` at ``modelDataCollector/<endpoint>/<deployment>/<collection>``
  (what azure-ai-ml's own ``begin_create_or_update`` registers), then the shadow's deployment
  ``green-v<N>`` with 0 % traffic and a ``dataCollector`` collecting both to those assets. That one
  PUT is sent with :data:`~mlops_core.clouds.azure.client.PREVIEW_API_VERSION`: ``dataCollector`` is
  in no GA version of the REST API azure-ai-ml ships. Then the alias ``shadow``.
* :func:`status`: once ``green-v<N>`` is Succeeded, the endpoint's ``mirrorTraffic`` becomes
  ``{green-v<N>: mirror_percent}``, its ``traffic`` unchanged (the champion keeps every answer);
  ready once the endpoint reports it.
* :func:`traffic` (each verdict): the day's collected ``model_inputs`` and ``model_outputs`` of the
  shadow's deployment, paired by ``correlationid``; the champion's answers to the same inputs are
  recomputed in process from its verified registry version. The champion's deployment is never
  touched (no collector put on it, no PUT that could disturb what serves), and it is the model the
  registry says it is (each deploy's smoke test checked the endpoint against it).
* :func:`promote` (the verdict promoted): mirroring off, then the blue/green path of any deploy:
  :meth:`~mlops_core.clouds.azure.deploy.AzureMLTarget.status` sets the strategy's split,
  :func:`mlops_core.shadow.complete_promotion` smoke-tests ``green-v<N>`` through its header and
  :meth:`~mlops_core.clouds.azure.deploy.AzureMLTarget.promote` gives it 100 % (or ``rollback`` deletes it).
* :func:`reject` and :func:`take_out`: mirroring off, ``green-v<N>`` deleted, the champion untouched.

The functions take the :class:`~mlops_core.clouds.azure.deploy.AzureMLTarget`, which calls them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlops_core.clouds.azure.client import PREVIEW_API_VERSION, AzureMLError
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.clouds.azure.client import AzureMLClient
    from mlops_core.spec import PipelineSpec

# the AzureMLTarget calling these; not imported: it imports this module
AzureMLTarget = Any

log = logging.getLogger(__name__)

COLLECTIONS = ("model_inputs", "model_outputs")  # the collections of an MLflow model's deployment
DATASTORE = "workspaceblobstore"  # the workspace's blob datastore azure-ai-ml collects to by default
COLLECTOR_FOLDER = "modelDataCollector"

# (the request's rows as records, the champion's predictions, the shadow's)
Pair = tuple[list[dict[str, Any]], list[Any], list[Any]]


def mirror_percent(spec: PipelineSpec) -> int | None:
    cfg = spec.deployment.shadow
    return cfg.mirror_percent if cfg is not None else None


def data_name(endpoint: str, deployment: str, collection: str) -> str:
    """The data asset of one collection, named as azure-ai-ml names it."""
    return f"{endpoint}-{deployment}-{collection}"


def collector(client: AzureMLClient, endpoint: str, deployment: str, pipeline: str) -> dict[str, Any]:
    """Register each collection's data asset (version 1; an existing one is kept) and return the
    ``dataCollector`` of the deployment: every request collected (``samplingRate`` 1), hourly folders."""
    collections: dict[str, Any] = {}
    for collection in COLLECTIONS:
        name = data_name(endpoint, deployment, collection)
        body = {
            "properties": {
                "dataType": "uri_folder",
                "dataUri": f"azureml://datastores/{DATASTORE}/paths/{COLLECTOR_FOLDER}/{endpoint}/{deployment}/{collection}",
                "description": f"{collection} collected from {endpoint}/{deployment} (mlops shadow)",
                "tags": {"mlops.pipeline": pipeline},
            }
        }
        try:
            client.put(f"data/{name}/versions/1", body)
        except AzureMLError as exc:
            if exc.status != 409:  # asset versions are immutable: a retried deploy finds its own
                raise
        collections[collection] = {
            "dataCollectionMode": "Enabled",
            "dataId": f"{client.workspace_id}/data/{name}/versions/1",
            "samplingRate": 1.0,
        }
    return {"collections": collections, "rollingRate": "Hour"}


def start(target: AzureMLTarget, spec: PipelineSpec, version: str, champion: str) -> Deployment:
    """Deploy ``version`` as ``green-v<N>`` with a data collector beside the champion's deployment."""
    from mlops_core.deploy import put_in_shadow

    client, endpoint, green = target.client, target.endpoint_name(spec), target.green(version)
    found = client.get_endpoint(endpoint)
    serving = target.serving(dict((found or {}).get("properties", {}).get("traffic") or {}), green)
    if serving is None:
        raise DeploymentFailed(
            f"Azure ML endpoint {endpoint} serves no deployment, so there is no live traffic to mirror to "
            f"v{version}: deploy the champion v{champion} to it first, or remove deployment.shadow.mirror_percent"
        )
    model_id = target.register(client, spec, version)
    body = target.deployment_body(
        model_id, spec.deployment.instance_type, spec.deployment.instance_count, spec.deployment.autoscaling
    )
    body["properties"]["dataCollector"] = collector(client, endpoint, green, spec.name)
    _, operation = client.put_deployment(endpoint, green, body, api_version=PREVIEW_API_VERSION)
    log.info("deploying v%s as %s on %s with a data collector, beside %s", version, green, endpoint, serving)
    dep = put_in_shadow(spec, version, champion, target.name)
    return replace(
        dep,
        endpoint=endpoint,
        state=UPDATING,
        extra={
            **dep.extra,
            "mirror": True,
            "endpoint": endpoint,
            "deployment": green,
            "previous_deployment": serving,
            "mirror_percent": mirror_percent(spec),
            "operation": operation,
            "model_id": model_id,
        },
    )


def _mirror(ep: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in (ep.get("properties", {}).get("mirrorTraffic") or {}).items() if int(v) > 0}


def status(target: AzureMLTarget, deployment: Deployment) -> str:
    """Ready once ``green-v<N>`` is Succeeded and the endpoint mirrors ``mirror_percent`` to it."""
    client = target.client
    endpoint, green = deployment.extra["endpoint"], deployment.extra["deployment"]
    found = client.get_deployment(endpoint, green)
    if found is None:
        raise DeploymentFailed(
            f"Azure ML deployment {endpoint}/{green} of the shadow is missing: "
            f"{target._failure(client, deployment)}"
        )
    ep = target.settled_endpoint(client, deployment, found)
    if ep is None:
        return UPDATING
    props = ep.get("properties", {})
    want = {green: int(deployment.extra["mirror_percent"])}
    if _mirror(ep) == want:
        deployment.state = READY
        return READY
    log.info("%s is up; mirroring %s %% of %s's requests to it", green, want[green], endpoint)
    traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
    deployment.extra["operation"] = client.set_traffic(endpoint, traffic, mirror=want, current=ep)
    return UPDATING


def _unmirror(target: AzureMLTarget, client: AzureMLClient, endpoint: str) -> dict[str, int]:
    """Mirroring off (the traffic as it is), waited for; returns the endpoint's traffic."""
    ep = client.get_endpoint(endpoint) or {}
    traffic = {k: int(v) for k, v in (ep.get("properties", {}).get("traffic") or {}).items()}
    if ep and _mirror(ep):
        url = client.set_traffic(endpoint, traffic, mirror={}, current=ep)
        target.wait(client, url, f"mirroring of {endpoint} off")
    return traffic


def _remove(target: AzureMLTarget, spec: PipelineSpec, version: str) -> None:
    """Mirroring off, then the shadow's deployment deleted (never one that serves traffic)."""

    client, endpoint, green = target.client, target.endpoint_name(spec), target.green(version)
    traffic = _unmirror(target, client, endpoint)
    if int(traffic.get(green, 0)) > 0:
        raise DeploymentFailed(
            f"{endpoint}/{green} serves {traffic[green]} % of the live traffic; not deleting it as a shadow"
        )
    client.delete_deployment(endpoint, green)
    log.info("shadow deployment %s/%s removed; the champion's deployment untouched", endpoint, green)


def reject(target: AzureMLTarget, spec: PipelineSpec, version: str) -> None:
    _remove(target, spec, version)


def take_out(target: AzureMLTarget, spec: PipelineSpec, deployment: Deployment) -> None:
    """A shadow's deploy or smoke test failed: its deployment goes, then the alias."""
    from mlops_core.deploy import take_out_of_shadow

    _remove(target, spec, deployment.version)
    take_out_of_shadow(spec, deployment)


def promote(target: AzureMLTarget, spec: PipelineSpec, version: str, champion: str) -> Deployment:
    """Mirroring off (a deployment cannot take live and mirrored traffic), then ``green-v<N>`` on the
    deploy's blue/green path: the returned :class:`Deployment` is what ``deploy`` would return."""

    client, endpoint, green = target.client, target.endpoint_name(spec), target.green(version)
    traffic = _unmirror(target, client, endpoint)
    found = client.get_deployment(endpoint, green)
    if found is None:
        raise DeploymentFailed(f"the shadow's deployment {endpoint}/{green} is gone; nothing to promote")
    return Deployment(
        target.name,
        spec.registered_model_name,
        version,
        champion,
        endpoint,
        spec.deployment.strategy,
        UPDATING,
        {
            "endpoint": endpoint,
            "deployment": green,
            "previous_deployment": target.serving(traffic, green),
            "previous_traffic": traffic,
            "operation": None,
            "model_id": found.get("properties", {}).get("model"),
            "canary_percent": spec.deployment.canary_percent,
            "instance_type": spec.deployment.instance_type,
            "instance_count": spec.deployment.instance_count,
        },
    )


# -- the collected traffic -----------------------------------------------------------------------


def collector_root(target: AzureMLTarget) -> str:
    """Where ``modelDataCollector/`` is: ``settings.data_collector_root``, else the container of the
    workspace's ``workspaceblobstore`` (read from Azure ML), which the lake's connection must reach."""
    settings = target.profile.settings
    if settings.get("data_collector_root"):
        return str(settings["data_collector_root"])
    store = target.client.get_datastore(DATASTORE) or {}
    props = store.get("properties", {})
    account, container = props.get("accountName"), props.get("containerName")
    if not container or account != settings.get("storage_account"):
        raise DeploymentFailed(
            f"the data collector writes to datastore {DATASTORE} (storage account {account}, container "
            f"{container}), not the lake's account {settings.get('storage_account')}: set "
            "settings.data_collector_root to an fsspec URI of its modelDataCollector folder"
        )
    return f"abfs://{container}/{COLLECTOR_FOLDER}"


def traffic(target: AzureMLTarget, spec: PipelineSpec, ds: str) -> list[Pair]:
    """The day's mirrored requests the shadow answered (its collected inputs and outputs paired by
    ``correlationid``), each with the champion's answers recomputed on the same rows."""
    import pandas as pd

    from mlops_core.runs import run_artifacts

    name = spec.registered_model_name
    shadow, champion = (
        registry.alias_version(name, registry.SHADOW),
        registry.alias_version(name, registry.CHAMPION),
    )
    if shadow is None or champion is None:
        return []
    base = "/".join([collector_root(target).rstrip("/"), target.endpoint_name(spec), target.green(shadow)])
    inputs, outputs = (collected(f"{base}/{c}", ds, c) for c in COLLECTIONS)
    answered = [
        (rows, outputs[cid]) for cid, rows in inputs.items() if len(outputs.get(cid, ())) == len(rows)
    ]
    if not answered:
        log.info("no mirrored request of %s collected on %s", base, ds)
        return []
    model = run_artifacts.load_verified(name, champion, allow_pickle=spec.model.allow_pickle)
    theirs = list(model.predict(pd.DataFrame([r for rows, _ in answered for r in rows])))
    pairs: list[Pair] = []
    for rows, predictions in answered:
        pairs.append((rows, theirs[: len(rows)], predictions))
        theirs = theirs[len(rows) :]
    log.info(
        "%d mirrored request(s) of %s paired on %s (champion v%s recomputed)", len(pairs), base, ds, champion
    )
    return pairs


def collected(root: str, ds: str, collection: str) -> dict[str, list[Any]]:
    """``correlationid`` -> the rows (``model_inputs``) or predictions (``model_outputs``) of each event
    of day ``ds`` under ``<root>/YYYY/MM/DD/HH/*.jsonl`` (JSON lines, one event per line, its payload
    in ``data``). An event without ``data`` or ``correlationid`` is skipped."""
    from mlops_core.data import filesystems

    fs, base = filesystems.filesystem(filesystems.join(root, *ds.split("-")))
    out: dict[str, list[Any]] = {}
    for path in sorted(fs.glob(f"{base}/*/*.jsonl")):
        for line in fs.cat_file(path).decode().splitlines():
            if not line.strip():
                continue
            events = json.loads(line)
            for event in events if isinstance(events, list) else [events]:
                cid, data = event.get("correlationid"), event.get("data")
                if cid and data is not None:
                    out.setdefault(str(cid), []).extend(_payload(data, collection == "model_outputs"))
    return out


def _payload(data: Any, outputs: bool) -> list[Any]:
    """Rows as records (inputs) or one prediction per row (outputs), from the forms a payload takes:
    records, ``{"columns", "data"}`` (pandas split), ``{"input_data": ...}``, ``{"predictions": [...]}``,
    ``[{"<output>": value}, ...]`` or plain values; a JSON string is parsed first."""
    if isinstance(data, str):
        data = json.loads(data)
    if isinstance(data, dict):
        for key in ("input_data", "predictions", "outputs"):
            if key in data:
                return _payload(data[key], outputs)
        if "columns" in data and "data" in data:
            return [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
        return [data]
    items = list(data) if isinstance(data, list) else [data]
    if outputs:
        return [next(iter(i.values())) if isinstance(i, dict) and len(i) == 1 else i for i in items]
    return items
