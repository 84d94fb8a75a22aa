"""An OpenLineage endpoint on 127.0.0.1 for the Airflow OpenLineage provider's ``http`` transport,
and what a test reads from the events it received.

:func:`lineage_endpoint` is a :class:`~tests.emulators.loopback.LoopbackAPI` with the one route the
transport posts to (``POST /api/v1/lineage``): every event is held to OpenLineage's JSON Schema
(:mod:`tests.contract.openlineage_schema`) and kept in ``api.events``; a refused one is answered
400 and recorded in ``api.violations``. :func:`transport_env` is the provider's configuration for
it, for every Airflow process that runs tasks (set before Airflow starts: the provider reads it
once per process). :func:`task_runs` groups the task events by (dag_id, Airflow run_id, task_id)
with the datasets each task named, so a test follows a chain by matching one step's output
(namespace, name) to the next step's input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.contract import openlineage_schema
from tests.emulators.loopback import Invalid, LoopbackAPI, Request

TERMINAL = ("COMPLETE", "FAIL", "ABORT")


def lineage_endpoint() -> LoopbackAPI:
    """The endpoint (not started: use it as a context manager); events in ``api.events``."""
    api = LoopbackAPI("openlineage")
    api.events = []  # type: ignore[attr-defined]

    @api.route("POST", "/api/v1/lineage")
    def receive(req: Request) -> tuple[int, Any]:
        errors = openlineage_schema.violations(req.body)
        if errors:
            raise Invalid("; ".join(errors[:5]))
        api.events.append(req.body)  # type: ignore[attr-defined]
        return 201, None

    return api


def transport_env(api: LoopbackAPI, namespace: str) -> dict[str, str]:
    """The provider's environment: HTTP transport to ``api``, jobs in ``namespace``."""
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": api.url}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": namespace,
    }


def names(datasets: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (namespace, name) of each dataset: what a reader matches an output to an input by."""
    return {(d["namespace"], d["name"]) for d in datasets}


@dataclass
class TaskRun:
    """The events of one task instance (every try) of one DAG run, and the datasets it named.

    ``types``: event types in event time order; ``tries``: try number -> its event types;
    ``inputs``/``outputs``: the datasets of its last terminal event (COMPLETE or FAIL);
    ``versions``: (namespace, name) -> the ``version`` facet, over all its terminal events.
    """

    types: list[str] = field(default_factory=list)
    tries: dict[int, list[str]] = field(default_factory=dict)
    inputs: set[tuple[str, str]] = field(default_factory=set)
    outputs: set[tuple[str, str]] = field(default_factory=set)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)


def _airflow(event: dict[str, Any]) -> dict[str, Any]:
    return ((event.get("run") or {}).get("facets") or {}).get("airflow") or {}


def task_runs(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], TaskRun]:
    """The task events (the provider's job ``<dag_id>.<task_id>``, its ``airflow`` run facet naming
    the DAG run) by (dag_id, Airflow run_id, task_id). The DAG runs' own events are left out."""
    found: dict[tuple[str, str, str], TaskRun] = {}
    for ev in sorted(events, key=lambda e: e["eventTime"]):
        facet = _airflow(ev)
        dag_run = facet.get("dagRun") or {}
        dag_id, run_id = dag_run.get("dag_id"), dag_run.get("run_id")
        if not (dag_id and run_id and ev["job"]["name"].startswith(f"{dag_id}.")):
            continue
        task = found.setdefault((dag_id, run_id, ev["job"]["name"].removeprefix(f"{dag_id}.")), TaskRun())
        kind = ev["eventType"]
        task.types.append(kind)
        task.tries.setdefault(int((facet.get("taskInstance") or {}).get("try_number") or 0), []).append(kind)
        if kind in TERMINAL:
            task.inputs = names(ev.get("inputs") or [])
            task.outputs = names(ev.get("outputs") or [])
            for d in [*(ev.get("inputs") or []), *(ev.get("outputs") or [])]:
                if "version" in (d.get("facets") or {}):
                    task.versions[(d["namespace"], d["name"])] = d["facets"]["version"]["datasetVersion"]
    return found


def of_run(
    runs: dict[tuple[str, str, str], TaskRun], dag_id: str, run_id: str | None = None
) -> dict[str, TaskRun]:
    """The tasks of ``dag_id``'s run ``run_id`` (any run when None: a DAG run once) by task_id."""
    return {t: r for (d, rid, t), r in runs.items() if d == dag_id and run_id in (None, rid)}


def handed_over(producer: TaskRun, consumer: TaskRun, what: str = "") -> tuple[str, str]:
    """The one dataset ``producer`` wrote and ``consumer`` read, by (namespace, name): one link
    of a chain a lineage reader follows."""
    shared = producer.outputs & consumer.inputs
    assert len(shared) == 1, f"{what}: outputs {producer.outputs} / inputs {consumer.inputs}"
    return next(iter(shared))
