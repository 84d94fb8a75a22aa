"""``ingestion.glue`` on moto, as far as moto goes: the real ``GlueJobOperator`` (through
:class:`~mlops_airflow.operators.ingestion.glue.GlueIngestionOperator`) and its real trigger against a moto
server, then ``ingest`` reading what the job wrote.

moto runs no Spark: the test writes the day's file where the job would (the job's stand-in), and
moto's run states are driven through its state manager (this module runs its own in-process
moto server so it can reach it: running for as long as the test says, then ``SUCCEEDED`` or
``FAILED``).

1. The first try starts one run with ``--ds`` and the expanded output path, and defers; the
   trigger (aiobotocore, the triggerer's code) polls moto until the run succeeds; ``ingest`` then
   reads the day the job wrote.
2. A retry while the run is still going finds it by the provider's task UUID (``GetJobRuns`` on
   moto) and waits for it: moto holds one run, not two.
3. A run that fails: the trigger reports the failure and the task fails; no partition is written.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.contract.test_managed_ingestion import DS, context
from tests.emulators.steps import first_event
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.emulator

REGION = "eu-west-1"
JOB = "orders-export"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_glue(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Glue on an in-process moto server (its own connection, ``aws_glue``); the lake and landing
    on the session's moto S3 (``aws_default``, the aws profile's), like every other emulator test."""
    import boto3
    from moto.moto_api import state_manager
    from moto.server import ThreadedMotoServer

    port = _port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": REGION},
    }
    root = f"s3://mlops-lake/{uuid.uuid4().hex[:8]}"

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    client("glue").create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"},
    )
    # runs stay STARTING until a test moves them on (moto's default jumps straight to SUCCEEDED)
    state_manager.set_transition("glue::job_run", {"progression": "manual", "times": 10**6})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AIRFLOW_CONN_AWS_GLUE": json.dumps(conn),
            "MLOPS_LOCAL_DIR": str(tmp_path_factory.mktemp("glue-ingestion")),
            "MLOPS_AWS_LAKE": f"{root}/lake",
            "MLOPS_AWS_LANDING": f"{root}/landing",
            "MLOPS_AWS_MONITORING_EXPORT": "none",
        }.items():
            mp.setenv(key, value)
        yield {"client": client, "root": root}
    state_manager.unset_transition("glue::job_run")
    server.stop()


def _runs() -> list[Any]:
    from moto.backends import get_backend

    return list(get_backend("glue")["123456789012"][REGION].jobs[JOB].job_runs)


def _spec(name: str) -> Any:
    return example_spec(
        name=name,
        cloud="aws",
        source={"uri": "${MLOPS_LANDING}/orders/ds={ds}/orders.csv", "partition": {"mode": "files"}},
        ingestion={
            "glue": {
                "job_name": JOB,
                "conn_id": "aws_glue",
                "arguments": {"--output": "${MLOPS_LANDING}/orders/ds={ds}/"},
            },
            "poll_seconds": 5,
        },
    )


def _write_the_jobs_output(root: str) -> None:
    """What the Glue job's script would do: write the day's rows under ``--output``."""
    from mlops_core.data import filesystems
    from mlops_dev import datasets

    frame = datasets.load_example("breast_cancer")
    fs, path = filesystems.filesystem(f"{root}/landing/orders/ds={DS}/orders.csv")
    with fs.open(path, "wb") as out:
        out.write(frame.to_csv(index=False).encode())


def test_a_glue_run_for_the_day_then_ingest_reads_what_it_wrote(moto_glue: dict[str, Any]) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_airflow.operators.data import IngestOperator
    from mlops_airflow.operators.ingestion.glue import GlueIngestionOperator

    spec = _spec("glue_orders")
    op = GlueIngestionOperator(task_id="managed_ingestion", pipeline=spec)
    before = len(_runs())
    with pytest.raises(TaskDeferred) as first:
        op.execute(context(op))
    runs = _runs()[before:]
    assert len(runs) == 1 and runs[0].status in ("STARTING", "RUNNING")
    assert runs[0].arguments["--ds"] == DS
    assert runs[0].arguments["--output"] == f"{moto_glue['root']}/landing/orders/ds={DS}/"

    with pytest.raises(TaskDeferred) as retry:  # try 2 while the run goes on: the same run
        op.execute(context(op, try_number=2))
    assert len(_runs()) == before + 1
    run_id = first.value.trigger.serialize()[1]["run_id"]
    assert retry.value.trigger.serialize()[1]["run_id"] == run_id == runs[0].job_run_id

    with cloud_context(spec):
        _write_the_jobs_output(moto_glue["root"])
    runs[0].status = "SUCCEEDED"
    event = asyncio.run(first_event(retry.value.trigger))  # the triggerer's code, polling GetJobRun
    assert event.payload["status"] == "success", event.payload
    assert op.execute_complete(context(op, try_number=2), event.payload) == run_id

    ingest = IngestOperator(task_id="ingest", pipeline=spec, partition_date=DS)
    raw = ingest.execute(context(ingest))
    assert raw["rows"] == 569 and raw["uri"].endswith(f"raw/ds={DS}")


def test_a_failed_glue_run_fails_the_task(moto_glue: dict[str, Any]) -> None:
    from airflow.providers.common.compat.sdk import AirflowException
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.operators.ingestion.glue import GlueIngestionOperator

    op = GlueIngestionOperator(task_id="managed_ingestion", pipeline=_spec("glue_fails"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(op))
    _runs()[-1].status = "FAILED"
    event = asyncio.run(first_event(deferred.value.trigger))
    assert event.payload["status"] == "error", event.payload
    with pytest.raises(AirflowException, match="glue job"):
        op.execute_complete(context(op), event.payload)
