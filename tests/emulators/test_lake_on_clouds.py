"""The lake on S3 (moto), GCS (gcp-storage-emulator) and Azure Blob/ADLS (Azurite).

The same example pipeline runs with only its ``cloud:`` line changed; the profile (from the
shipped ``include/clouds.yaml``, its variables set here) puts lake and landing on the emulator
and the Airflow connection the fixture exported leads there. Training stays in the worker and
the deploy target local for these runs (``MLOPS_<CLOUD>_TRAINING_BACKEND`` / ``_DEPLOY_TARGET``):
no emulator runs SageMaker, Vertex AI or Azure ML jobs or endpoints (see tests/contract).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.helpers import example_data, install_pipeline

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
    from mlops_airflow.cloud import cloud_context

    return cloud_context(spec)


def test_partitions_are_versioned_on_the_object_store(cloud):
    from mlops_core import storage
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
        fs, path = storage.filesystem(m2.uri)
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
            storage.filesystem(storage.partition_uri(profile.lake, "p", "raw", "2026-01-06"))[1]
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
    from mlops_core import storage
    from mlops_core.spec import parse_spec

    spec = parse_spec(example_data(cloud=cloud))
    with _in_cloud(spec) as profile:
        m1 = storage.write_partition(
            {"data": pd.DataFrame({"a": [1]})}, profile.lake, "p", "raw", "2026-01-05"
        )
        fs, path = storage.filesystem(m1.uri)
        rival = storage.Manifest.from_json(m1.to_json())
        rival.commit = "0" * 16
        if cloud == "gcp":
            pytest.skip("gcp-storage-emulator ignores ifGenerationMatch=0 (real GCS honours it)")
        with pytest.raises(FileExistsError):
            storage._create_remote(fs, f"{path}/_manifests/{1:020d}.json", rival)
        assert storage.read_manifest(m1.uri, version=1).commit == m1.commit  # not overwritten


def test_racing_writers_publish_whole_versions(cloud):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from mlops_core import storage
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


def test_training_dag_runs_with_its_lake_on_the_emulator(cloud, airflow_db, request):
    from mlops_airflow.builder import build_training_dag
    from mlops_core import datasets, registry, storage

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
        fs, path = storage.filesystem(storage.join(profile.lake, spec.name))
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
