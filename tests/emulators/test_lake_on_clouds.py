"""The lake on S3 (moto), GCS (gcp-storage-emulator) and Azure Blob/ADLS (Azurite).

The same example pipeline runs with only its ``cloud:`` line changed; the profile (from the
shipped ``include/clouds.yaml``, its variables set here) puts lake and landing on the emulator
and the Airflow connection the fixture exported leads there. Training stays in the worker and
the deploy target local for these runs (``MLOPS_<CLOUD>_TRAINING_BACKEND`` / ``_DEPLOY_TARGET``):
no emulator runs SageMaker, Vertex AI or Azure ML jobs or endpoints (see tests/contract).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from tests.helpers import REPO, example_data, install_pipeline

pytestmark = pytest.mark.emulator

SCHEMES = {"aws": "s3", "gcp": "gs", "azure": "abfs"}
PREFIX = {"aws": "MLOPS_AWS", "gcp": "MLOPS_GCP", "azure": "MLOPS_AZURE"}
EMULATOR = {"aws": "moto_endpoint", "gcp": "gcs_endpoint", "azure": "azurite_connection_string"}


@pytest.fixture(params=["aws", "gcp", "azure"])
def cloud(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, local_dir) -> str:
    """One cloud profile pointed at its emulator, in a fresh folder of the emulator's bucket."""
    name = request.param
    request.getfixturevalue(EMULATOR[name])
    root = f"{SCHEMES[name]}://mlops-lake/{uuid.uuid4().hex[:8]}"
    prefix = PREFIX[name]
    monkeypatch.setenv(f"{prefix}_LAKE", f"{root}/lake")
    monkeypatch.setenv(f"{prefix}_LANDING", f"{root}/landing")
    monkeypatch.setenv(f"{prefix}_TRAINING_BACKEND", "in_worker")
    monkeypatch.setenv(f"{prefix}_DEPLOY_TARGET", "local")
    monkeypatch.setenv(f"{prefix}_MONITORING_EXPORT", "cloudwatch" if name == "aws" else "none")
    return name


def _in_cloud(spec):
    from mlops_airflow.hooks.cloud import cloud_context

    return cloud_context(spec)


# Writer processes on the emulator, one per commit step. Starting Airflow's object storage costs
# seconds of imports, so one process pays it once and forks a writer per step. Each writer enters
# the cloud profile (the AIRFLOW_CONN_* and MLOPS_<CLOUD>_* variables it inherits lead it to the
# emulator and to this test's folder), rewrites its step's partition with ``rows`` rows (two frames
# and a file), and when the commit reaches its step (tests/commit_steps.py) says so and sleeps, so
# the test can kill -9 it exactly there (as tests/faults/test_lake_faults.py does on a disk). The
# forking process reports
# each writer's pid and, once it is gone, the signal that ended it. These words go over a pipe of
# their own: on stdout, a cloud SDK's multi-line request logs (larger than a pipe's atomic write)
# can split a "PID" line, and a writer that is never killed finishes its write.
WRITERS = r"""
import os, signal, sys, time
import pandas as pd
from mlops_core.data import storage
from mlops_core.spec import parse_spec
from tests import commit_steps
from mlops_airflow.hooks.cloud import cloud_context
from tests.helpers import example_data
import airflow.sdk.io.fs

airflow.sdk.io.fs._register_filesystems()  # imports every provider's filesystem, before forking
cloud, rows, steps = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
words = os.fdopen(int(sys.argv[3]), "w", buffering=1)  # one short line per write: atomic on a pipe
children = {}
for arg in steps:
    step, ds = arg.split("=")
    pid = os.fork()
    if pid == 0:
        def paused(step=step):
            print(f"PAUSED {step}", file=words, flush=True)
            time.sleep(120)

        commit_steps.pause_at(step, paused)
        try:
            with cloud_context(parse_spec(example_data(cloud=cloud))) as profile:
                frame = pd.DataFrame({"a": range(rows), "b": [f"w{rows}"] * rows})
                storage.write_partition(
                    {"data": frame, "copy": frame}, profile.lake, "p", "raw", ds,
                    files={"n.txt": str(rows).encode()},
                )
            print(f"DONE {step}", file=words, flush=True)
        finally:
            os._exit(0)
    children[pid] = step
    print(f"PID {step} {pid}", file=words, flush=True)
for _ in children:
    pid, status = os.wait()
    print(f"ENDED {children[pid]} {os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}", file=words, flush=True)
"""


def _cloud_writers(cloud: str, rows: int, days: dict[str, str]) -> tuple[subprocess.Popen[str], Any]:
    """The writers' process and the read end of the pipe it reports on (PID, PAUSED, DONE, ENDED)."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITERS,
                cloud,
                str(rows),
                str(write),
                *(f"{s}={ds}" for s, ds in days.items()),
            ],
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": path},
            pass_fds=(write,),
        )
    finally:
        os.close(write)  # the child holds its own copy: end of file once every writer is gone
    return proc, os.fdopen(read, "r")


def _whole(uri: str) -> tuple[int, int]:
    """(version, rows) of the newest version read as a consumer would; every file checked against its manifest."""
    from mlops_core.data import filesystems, storage

    m = storage.read_manifest(uri)
    fs, path = filesystems.filesystem(uri)
    for entry in m.files:
        storage._read_entry(fs, path.rstrip("/"), uri, entry, verify=True)
    data = storage.read_frame(uri, version=m.version)
    copy = storage.read_frame(uri, "copy", version=m.version)
    assert len(data) == len(copy) == m.rows and set(data["b"]) == {f"w{m.rows}"}
    assert data.equals(copy) and storage.read_file(f"{uri}/n.txt") == str(m.rows).encode()
    return m.version, m.rows


def test_partitions_are_versioned_on_the_object_store(cloud):
    from mlops_core.data import filesystems, storage
    from mlops_core.spec import parse_spec

    spec = parse_spec(example_data(cloud=cloud))
    with _in_cloud(spec) as profile:
        assert profile.lake.startswith(f"{SCHEMES[cloud]}://")
        first = pd.DataFrame({"a": [1, 2, 3]})
        m1 = storage.write_partition({"data": first}, profile.lake, "p", "raw", "2026-01-05")
        assert m1.version == 1 and storage.read_frame(m1.uri).equals(first)

        # a rewrite is a new version: new immutable files, one new manifest; the old one stays readable
        second = pd.DataFrame({"a": [9]})
        m2 = storage.write_partition(
            {"data": second}, profile.lake, "p", "raw", "2026-01-05", files={"note.txt": b"x"}
        )
        assert m2.version == 2 and storage.read_frame(m2.uri).equals(second) and m2.sha256 != m1.sha256
        assert storage.read_frame(m1.uri, version=1).equals(first)
        assert storage.read_file(f"{m2.uri}/note.txt") == b"x"
        fs, path = filesystems.filesystem(m2.uri)
        fs.invalidate_cache()
        assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(path)) == sorted(
            [f"{1:020d}.json", f"{2:020d}.json", m1.files[0].path, m2.files[0].path, m2.files[1].path]
        )

        # a write that fails half way leaves nothing behind: no partition, no temporary files
        class Boom(pd.DataFrame):
            def to_parquet(self, *args, **kwargs):
                raise RuntimeError("disk full")

        with pytest.raises(RuntimeError, match="disk full"):
            storage.write_partition(
                {"data": first, "bad": Boom({"a": [1]})}, profile.lake, "p", "raw", "2026-01-06"
            )
        with pytest.raises(FileNotFoundError, match="no complete partition"):
            storage.read_manifest(storage.partition_uri(profile.lake, "p", "raw", "2026-01-06"))
        fs.invalidate_cache()
        assert not fs.exists(
            filesystems.filesystem(storage.partition_uri(profile.lake, "p", "raw", "2026-01-06"))[1]
        )

        # a rewrite that fails half way keeps the current version whole
        with pytest.raises(RuntimeError, match="disk full"):
            storage.write_partition(
                {"data": first, "bad": Boom({"a": [1]})}, profile.lake, "p", "raw", "2026-01-05"
            )
        assert storage.read_manifest(m2.uri).version == 2 and storage.read_frame(m2.uri).equals(second)

        # content changed behind the manifest's back is refused
        fs.pipe(f"{path}/{m2.files[0].path}", storage._parquet_bytes(first))
        with pytest.raises(ValueError, match="does not match its manifest"):
            storage.read_frame(m2.uri)


def test_manifest_publish_is_a_conditional_create(cloud):
    """The store refuses a second manifest for a taken version; the writer retries as the next."""
    from mlops_core.data import filesystems, storage
    from mlops_core.spec import parse_spec

    spec = parse_spec(example_data(cloud=cloud))
    with _in_cloud(spec) as profile:
        m1 = storage.write_partition(
            {"data": pd.DataFrame({"a": [1]})}, profile.lake, "p", "raw", "2026-01-05"
        )
        fs, path = filesystems.filesystem(m1.uri)
        rival = storage.Manifest.from_json(m1.to_json())
        rival.commit = "0" * 16
        if cloud == "gcp":
            # gcp-storage-emulator ignores the precondition (real GCS answers 412), so on it the
            # promise is shown by the request: the publish is an upload with ifGenerationMatch=0
            sent = _gcs_uploads(
                fs, lambda: storage._create_remote(fs, f"{path}/_manifests/{7:020d}.json", rival)
            )
            assert sent and all(kw.get("ifGenerationMatch") == "0" for kw in sent), sent
            return
        with pytest.raises(FileExistsError):
            storage._create_remote(fs, f"{path}/_manifests/{1:020d}.json", rival)
        assert storage.read_manifest(m1.uri, version=1).commit == m1.commit  # not overwritten


def _gcs_uploads(fs, publish) -> list[dict]:
    """The keyword arguments of every upload (POST) gcsfs sends while ``publish`` runs."""
    sent: list[dict] = []
    real = fs._call

    async def spy(method, *args, **kwargs):
        if method == "POST":
            sent.append(kwargs)
        return await real(method, *args, **kwargs)

    fs._call = spy
    try:
        publish()
    finally:
        del fs._call
    return sent


def test_racing_writers_publish_whole_versions(cloud):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from mlops_core.data import storage
    from mlops_core.spec import parse_spec

    spec = parse_spec(example_data(cloud=cloud))
    with _in_cloud(spec) as profile:

        def write(n: int) -> int:
            frame = pd.DataFrame({"a": range(n)})
            return storage.write_partition({"data": frame}, profile.lake, "p", "raw", "2026-01-07").version

        with ThreadPoolExecutor(4) as pool:  # each thread in a copy of the step's context (connection)
            futures = [pool.submit(contextvars.copy_context().run, write, n) for n in (2, 3, 4, 5)]
            published = sorted(f.result() for f in futures)
        uri = storage.partition_uri(profile.lake, "p", "raw", "2026-01-07")
        for version in published:  # every version a writer was told about is whole and its own
            manifest = storage.read_manifest(uri, version=version)
            assert len(storage.read_frame(uri, version=version)) == manifest.rows
        newest = storage.read_manifest(uri)
        assert newest.version == max(published) and len(storage.read_frame(uri)) == newest.rows
        if cloud != "gcp":  # a conditional create: no version lost, none shared
            assert published == [1, 2, 3, 4]


STEPS = {"data_file": (1, 10), "data_written": (1, 10), "manifest_staged": (1, 10), "published": (2, 50)}


def test_kill_9_at_each_commit_step_leaves_a_whole_version_on_the_object_store(cloud):
    """A writer process killed -9 at each step of the commit, on the object store: the previous
    version (or, once published, the new one) stays whole and the next writer publishes after it.

    One writer at a time here, so the gcp-storage-emulator ignoring ``ifGenerationMatch=0`` does
    not weaken what is checked: every assertion holds on all three stores.
    """
    from mlops_core.data import storage
    from mlops_core.spec import parse_spec

    spec = parse_spec(example_data(cloud=cloud))
    days = {step: f"2026-01-{10 + i:02d}" for i, step in enumerate(STEPS)}  # a partition per step
    with _in_cloud(spec) as profile:
        uris = {}
        for step, ds in days.items():
            frame = pd.DataFrame({"a": range(10), "b": ["w10"] * 10})
            m = storage.write_partition(
                {"data": frame, "copy": frame}, profile.lake, "p", "raw", ds, files={"n.txt": b"10"}
            )
            assert m.version == 1
            uris[step] = m.uri
    # a writer per step, each stopped at its step (Airflow's hooks log to stdout too: only the
    # writers' own words count), then killed -9 there
    proc, words = _cloud_writers(cloud, 50, days)
    pids: dict[str, int] = {}
    paused: set[str] = set()
    ended: dict[str, int] = {}
    try:
        for line in words:
            word, _, rest = line.strip().partition(" ")
            if word in ("PID", "PAUSED"):
                step, *pid = rest.split()
                if word == "PID":
                    pids[step] = int(pid[0])
                else:
                    paused.add(step)
                if step in paused and step in pids:  # whichever line comes second
                    os.kill(pids[step], signal.SIGKILL)
            elif word == "ENDED":
                step, sig = rest.split()
                ended[step] = int(sig)
            elif word == "DONE":
                pytest.fail(f"the writer for {rest} was never stopped at its step")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            for pid in pids.values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.kill()
            proc.wait(10)
        words.close()
    assert paused == set(STEPS) and ended == dict.fromkeys(STEPS, signal.SIGKILL), (paused, ended)
    with _in_cloud(spec) as profile:
        for step, visible in STEPS.items():
            assert _whole(uris[step]) == visible, step  # the previous version (or the new one), whole
            # nothing the killed writer left behind blocks the next writer
            frame = pd.DataFrame({"a": range(7), "b": ["w7"] * 7})
            m = storage.write_partition(
                {"data": frame, "copy": frame}, profile.lake, "p", "raw", days[step], files={"n.txt": b"7"}
            )
            assert m.version == visible[0] + 1, step
            assert _whole(uris[step]) == (visible[0] + 1, 7), step


def test_reader_never_sees_an_error_or_a_mismatch_during_rewrites_on_the_object_store(cloud, request):
    """A reader looping while a writer rewrites the partition: hundreds of reads, none fails, and
    every frame read is exactly one a writer wrote (version ``k`` writes ``10 + k`` rows, all ``k``).

    One writer, so this holds on the gcp-storage-emulator too (it ignores ``ifGenerationMatch=0``,
    which only racing writers rely on; see test_racing_writers_publish_whole_versions).
    """
    import contextvars
    import logging

    from mlops_core.data import storage
    from mlops_core.spec import parse_spec

    def frame(k: int) -> pd.DataFrame:
        return pd.DataFrame({"k": [k] * (10 + k), "a": range(10 + k)})

    spec = parse_spec(example_data(cloud=cloud))
    # the writer is paced on the reader (a few reads between rewrites), so the count does not
    # depend on how loaded the machine is; the deadline only bounds a hang
    min_reads, reads_per_rewrite, max_seconds = 200, 3, 240.0
    # the Azure SDK logs every request and response at INFO: thousands here, and slow to format
    http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    level = http_log.level
    http_log.setLevel(logging.WARNING)  # setLevel, not setattr: it clears the loggers' level cache
    request.addfinalizer(lambda: http_log.setLevel(level))
    with _in_cloud(spec) as profile:
        m = storage.write_partition({"data": frame(1)}, profile.lake, "p", "raw", "2026-01-20")
        assert m.version == 1
        uri = m.uri
        published: list[int] = [1]
        seen: list[int] = []
        mismatches: list[int] = []
        errors: list[BaseException] = []
        done = threading.Event()
        deadline = time.monotonic() + max_seconds

        def write_loop() -> None:  # rewrites until the reader has its reads (or time is up)
            try:
                while len(seen) < min_reads and time.monotonic() < deadline:
                    k = published[-1] + 1
                    m = storage.write_partition({"data": frame(k)}, profile.lake, "p", "raw", "2026-01-20")
                    assert m.version == k
                    published.append(k)
                    # the reader's turn: a few reads of the versions around this rewrite
                    target = min(min_reads, len(seen) + reads_per_rewrite)
                    while len(seen) < target and not errors and time.monotonic() < deadline:
                        time.sleep(0.005)
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)
            finally:
                done.set()

        def read_loop() -> None:
            while not done.is_set():
                try:
                    got = storage.read_frame(uri)  # lists _manifests/ afresh (no cached listing)
                except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                    errors.append(exc)
                    continue
                k = int(got["k"].iloc[0]) if len(got) else -1
                if not got.equals(frame(k)):
                    mismatches.append(k)
                seen.append(k)

        # each thread in a copy of this context (the profile's connection)
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(fn,))
            for fn in (write_loop, read_loop)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max_seconds + 30)
        assert not any(t.is_alive() for t in threads)
    assert errors == [] and mismatches == [], (errors[:3], mismatches[:3])
    assert len(seen) >= min_reads, (
        len(seen),
        len(published),
        "reads before the deadline",
    )  # hundreds of reads
    assert seen == sorted(seen) and set(seen) <= set(published)  # only forward, only written versions
    assert len(set(seen)) > 5, sorted(set(seen))  # the reader really did run through rewrites


def test_training_dag_runs_with_its_lake_on_the_emulator(cloud, airflow_db, request):
    from mlops_airflow.builder import build_training_dag
    from mlops_core.data import filesystems, storage
    from mlops_core.runs import registry
    from mlops_dev import datasets

    spec = install_pipeline(f"em_{cloud}", cloud=cloud)
    with _in_cloud(spec) as profile:
        datasets.materialize("breast_cancer", profile.landing)
    dag = build_training_dag(spec)
    dr = dag.test(logical_date=datetime(2026, 1, 31, tzinfo=UTC))
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "success", states
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"

    # the lake is on the emulator: the raw partition and its manifest, read through the profile
    with _in_cloud(spec) as profile:
        raw = storage.partition_uri(profile.lake, spec.name, "raw", "2026-01-31")
        manifest = storage.read_manifest(raw)
        assert manifest.uri.startswith(f"{SCHEMES[cloud]}://") and manifest.rows > 100
        fs, path = filesystems.filesystem(filesystems.join(profile.lake, spec.name))
        stages = {p.rsplit("/", 1)[-1] for p in fs.ls(path)}
    assert {"raw", "validation", "holdout", "evaluation"} <= stages, stages
    run_tags = registry.client().get_run(registry.client().get_model_version(spec.name, "1").run_id).data.tags
    assert run_tags["mlops.raw_uri"].startswith(f"{SCHEMES[cloud]}://")

    if cloud == "aws":  # the profile exports model metrics to CloudWatch (moto's)
        import boto3

        endpoint = request.getfixturevalue("moto_endpoint")
        cw = boto3.client(
            "cloudwatch",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        names = {m["MetricName"] for m in cw.list_metrics(Namespace="MLOps")["Metrics"]}
        assert "holdout_roc_auc" in names, names
