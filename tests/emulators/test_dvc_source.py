"""DVC sources against real git + DVC repositories, with a remote on the local disk and on S3 (moto).

Each repository is built once per module with the real ``git`` and ``dvc`` commands: ``git
init``, ``dvc init``, ``dvc remote add``, ``dvc add``, ``dvc push``, ``git commit``, ``git tag``
for two versions of the data (v1, v2), then the repository's DVC cache and the workspace copies
are deleted, so every read below has to come from the DVC remote. The S3 remote is a
``ThreadedMotoServer``; its endpoint is committed in the repository's ``.dvc/config`` (as a team
would commit a MinIO endpoint) and its credentials come from the environment, never the YAML.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.emulator

NAME = "breast_cancer"
DS = "2026-01-20"
BUCKET = "mlops-dvc"
REGION = "eu-west-1"
# git and dvc as a CI runner would have them: no user or system config, no analytics
TOOL_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "data team",
    "GIT_AUTHOR_EMAIL": "data@example.com",
    "GIT_COMMITTER_NAME": "data team",
    "GIT_COMMITTER_EMAIL": "data@example.com",
    "DVC_NO_ANALYTICS": "1",
}


def _rows(n: int, seed: int) -> bytes:
    """A small breast-cancer-shaped CSV: ``n`` rows over 2026-01-01..20 (``n / 20`` a day)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["record_id", "event_date", "mean_radius", "diagnosis"])
    for i in range(n):
        day = 1 + i % 20
        writer.writerow(
            [seed * 1000 + i, f"2026-01-{day:02d}", 10 + (i * 7 + seed) % 20, ["benign", "malignant"][i % 2]]
        )
    return out.getvalue().encode()


def _run(cwd: Path, *args: str) -> str:
    """``git ...`` as a subprocess; ``dvc ...`` through DVC's own CLI entry point, in this process
    (the command line a user types, without paying DVC's import time for each of its 20 commands)."""
    if args[0] == "dvc":
        from dvc.cli import main

        old = Path.cwd()
        os.chdir(cwd)
        try:
            assert main(list(args[1:])) == 0, " ".join(args)
        finally:
            os.chdir(old)
        return ""
    done = subprocess.run(
        args, cwd=cwd, env=os.environ | TOOL_ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def _write(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)


def _make_repo(root: Path, remotes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A git + DVC repository with tags v1 and v2 of data/train.csv (and daily files in v2).

    The first of ``remotes`` is the default and receives every push; the others are only
    defined. Returns what the tests check against: each tag's commit, the md5s and the bytes.
    """
    root.mkdir(parents=True)
    _run(root, "git", "init", "-q", "-b", "main")
    _run(root, "dvc", "init", "-q")
    for i, (remote, options) in enumerate(remotes.items()):
        _run(root, "dvc", "remote", "add", *(["-d"] if i == 0 else []), remote, options["url"])
        for key, value in options.items():
            if key != "url":
                _run(root, "dvc", "remote", "modify", remote, key, value)
    _write(root / "data" / "notes.csv", b"a,b\n1,2\n")  # tracked by git only
    versions: dict[str, Any] = {}
    for tag, blob in (("v1", _rows(40, 1)), ("v2", _rows(60, 2))):
        _write(root / "data" / "train.csv", blob)
        targets = ["data/train.csv"]
        if tag == "v2":  # one file per day, tracked as a folder
            for day in ("2026-01-19", "2026-01-20"):
                _write(root / "data" / "events" / f"day_{day}.csv", _rows(20, int(day[-2:])))
            targets.append("data/events")
        _run(root, "dvc", "add", "-q", *targets)
        _run(root, "dvc", "push", "-q")
        _run(root, "git", "add", "-A")
        _run(root, "git", "commit", "-q", "-m", f"data {tag}")
        _run(root, "git", "tag", tag)
        dvc_file = yaml.safe_load(_run(root, "git", "show", f"{tag}:data/train.csv.dvc"))
        versions[tag] = {
            "commit": _run(root, "git", "rev-parse", f"{tag}^{{commit}}"),
            "md5": dvc_file["outs"][0]["md5"],
            "blob": blob,
        }
    # the read must come from the remote: no DVC cache, no workspace copies
    shutil.rmtree(root / ".dvc" / "cache")
    (root / "data" / "train.csv").unlink()
    shutil.rmtree(root / "data" / "events")
    return versions


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto S3 for the module; credentials (dummy) in the environment as a worker would have them."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
                mp.delenv(var, raising=False)
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_DEFAULT_REGION", REGION)
            mp.setenv("AWS_MAX_ATTEMPTS", "1")  # the unreachable remote fails in ~1 s, not after retries
            mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
            boto3.client("s3", endpoint_url=url, region_name=REGION).create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            s3fs.S3FileSystem.clear_instance_cache()
            yield url
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[SimpleNamespace]:
    """The landing zone with the two repositories (local-disk remote, S3 remote) and a cloud profile."""
    from mlops_core.spec import profiles as clouds

    base = tmp_path_factory.mktemp("dvc-source")
    landing = base / "landing"
    repos = landing / NAME
    closed = _closed_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVC_SITE_CACHE_DIR", str(base / "dvc-site"))  # DVC's index, not /var/tmp/dvc
        mp.setenv("DVC_NO_ANALYTICS", "1")
        local = _make_repo(
            repos / "local-remote",
            {
                "store": {"url": str(base / "remotes" / "store")},
                "gone": {"url": str(base / "remotes" / "gone")},
            },
        )
        s3 = _make_repo(
            repos / "s3-remote",
            {
                "s3": {"url": f"s3://{BUCKET}/store", "endpointurl": moto_url},
                "offline": {"url": f"s3://{BUCKET}/store", "endpointurl": f"http://127.0.0.1:{closed}"},
            },
        )
        profile = clouds.CloudProfile(
            name="test",
            lake=(base / "lake").as_uri(),
            landing=landing.as_uri(),
            conn_id=None,
            training_backend="in_worker",
            deploy_target="local",
            monitoring_export="none",
        )
        yield SimpleNamespace(
            base=base, landing=landing, profile=profile, versions={"local": local, "s3": s3}
        )


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REPO = {
    "local": "${MLOPS_LANDING}/breast_cancer/local-remote",
    "s3": "${MLOPS_LANDING}/breast_cancer/s3-remote",
}


def _spec(kind: str = "local", rev: str = "v1", **source: Any) -> Any:
    dvc = {"repo": REPO[kind], "rev": rev} | source.pop("dvc", {})
    return example_spec(
        source={"uri": "dvc://data/train.csv", "partition": {"mode": "snapshot"}, "dvc": dvc} | source
    )


def _ingest(world: SimpleNamespace, spec: Any, lake: Path, ds: str = DS) -> dict[str, Any]:
    from mlops_core import lifecycle
    from mlops_core.spec import profiles as clouds

    with clouds.using(world.profile):
        return lifecycle.ingest(spec, ds, lake.as_uri())


def _manifest(result: dict[str, Any]) -> Any:
    from mlops_core.data import storage

    return storage.read_manifest(result["uri"])


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_each_tag_reads_its_own_content_from_the_remote_and_lineage_names_commit_and_md5(
    world, tmp_path, kind
):
    import pandas as pd

    from mlops_core.data import storage

    lake = tmp_path / "lake"
    results = {
        rev: _ingest(world, _spec(kind, rev), lake, ds) for rev, ds in (("v1", DS), ("v2", "2026-01-21"))
    }
    for rev, result in results.items():
        expected = world.versions[kind][rev]
        frame = storage.read_frame(result["uri"])
        pd.testing.assert_frame_equal(frame, pd.read_csv(io.BytesIO(expected["blob"])), check_dtype=False)
        assert expected["md5"] == hashlib.md5(expected["blob"]).hexdigest()  # DVC 3: md5 of the bytes
        lineage = _manifest(result).extra["dvc"]
        assert lineage == {
            "repo": str(world.landing / NAME / f"{kind}-remote"),
            "rev": rev,
            "commit": expected["commit"],
            "remote": "store" if kind == "local" else "s3",
            "files": [
                {
                    "path": "data/train.csv",
                    "md5": expected["md5"],
                    "size": len(expected["blob"]),
                    "hash": "md5",
                }
            ],
        }
        assert len(expected["commit"]) == 40 and expected["commit"] != rev  # the sha, not the tag
        assert result["dvc"]["commit"] == expected["commit"] and result["dvc"]["md5"] == expected["md5"]
        assert _manifest(result).extra["source_uri"] == "dvc://data/train.csv"
    assert results["v1"]["rows"] == 40 and results["v2"]["rows"] == 60
    assert results["v1"]["sha256"] != results["v2"]["sha256"]
    repo = world.landing / NAME / f"{kind}-remote"
    assert not (repo / ".dvc" / "cache").exists() and not (repo / "data" / "train.csv").exists()


def test_a_commit_sha_and_an_abbreviated_one_read_the_same_as_the_tag(world, tmp_path):
    commit = world.versions["local"]["v2"]["commit"]
    full = _ingest(world, _spec(rev=commit), tmp_path / "a")
    short = _ingest(world, _spec(rev=commit[:10]), tmp_path / "b")
    assert full["sha256"] == short["sha256"] and full["rows"] == 60
    assert full["dvc"]["commit"] == short["dvc"]["commit"] == commit
    assert short["dvc"]["rev"] == commit[:10]


def test_column_mode_keeps_the_window_of_the_revision(world, tmp_path):
    spec = _spec(rev="v2", partition={"mode": "column", "column": "event_date", "lookback_days": 5})
    result = _ingest(world, spec, tmp_path / "lake")
    assert result["rows"] == 15  # 3 rows a day in v2, days 16..20
    assert _manifest(result).extra["mode"] == "column"


def test_files_mode_reads_the_days_of_a_dvc_tracked_folder(world, tmp_path):
    spec = _spec(
        uri="dvc://data/events/day_{ds}.csv", rev="v2", partition={"mode": "files", "lookback_days": 3}
    )
    result = _ingest(world, spec, tmp_path / "lake")
    assert result["rows"] == 40  # 19th and 20th (the 18th is not in the folder: not required)
    files = _manifest(result).extra["dvc"]["files"]
    assert [f["path"] for f in files] == ["data/events/day_2026-01-20.csv", "data/events/day_2026-01-19.csv"]
    for f, day in zip(files, (20, 19), strict=True):
        assert f["md5"] == hashlib.md5(_rows(20, day)).hexdigest()
    assert result["dvc"]["files"] == 2


def test_files_mode_with_no_file_for_the_day_is_not_ready(world, tmp_path):
    from mlops_core.data.errors import SourceNotReady

    spec = _spec(
        uri="dvc://data/events/day_{ds}.csv", rev="v2", partition={"mode": "files", "lookback_days": 1}
    )
    with pytest.raises(SourceNotReady, match=r"no source file for ds=2026-03-01"):
        _ingest(world, spec, tmp_path / "lake", "2026-03-01")
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("kind", "change", "error", "match"),
    [
        (
            "local",
            {"rev": "v9"},
            "DvcSourceError",
            r"source.dvc.rev 'v9' is not a branch, tag or commit of .*fix source.dvc.rev",
        ),
        (
            "local",
            {"uri": "dvc://data/missing.csv"},
            "DvcSourceError",
            r"dvc://data/missing.csv is not in .* at rev 'v1' \(commit [0-9a-f]{12}\): fix source.uri",
        ),
        (
            "local",
            {"uri": "dvc://data/notes.csv"},
            "DvcSourceError",
            r"tracked by git, not by DVC.*`dvc add` it",
        ),
        ("local", {"uri": "dvc://data"}, "DvcSourceError", r"is a directory"),
        (
            "local",
            {"remote": "nope"},
            "DvcSourceError",
            r"defines no DVC remote 'nope' \(its remotes: gone, store\); fix source.dvc.remote",
        ),
        (
            "local",
            {"remote": "gone"},
            "DvcSourceError",
            r"neither in the repository's DVC cache nor on DVC remote 'gone' .*`dvc push -r gone`",
        ),
        (
            "s3",
            {"remote": "offline"},
            "DvcRemoteUnavailable",
            r"DVC remote 'offline' \(s3://mlops-dvc/store\) did not answer .*endpointurl",
        ),
        (
            "local",
            {"repo": "${MLOPS_LANDING}/breast_cancer/no-such-repo"},
            "DvcSourceError",
            r"no-such-repo does not exist: point source.dvc.repo at the repository's root",
        ),
    ],
    ids=[
        "unknown-rev",
        "missing-path",
        "git-only-path",
        "a-folder",
        "undefined-remote",
        "data-not-on-remote",
        "unreachable-remote",
        "no-repo",
    ],
)
def test_a_source_that_cannot_be_read_fails_naming_the_fix_and_writes_nothing(
    world, tmp_path, monkeypatch, kind, change, error, match
):
    from mlops_core.data import dvc_source

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where a download would be left
    (tmp_path / "tmp").mkdir()
    change = dict(change)
    uri = change.pop("uri", "dvc://data/train.csv")
    spec = _spec(kind, change.pop("rev", "v1"), uri=uri, dvc=change)
    with pytest.raises(getattr(dvc_source, error), match=match):
        _ingest(world, spec, tmp_path / "lake")
    assert not (tmp_path / "lake").exists()  # no partition, not even a half-written one
    assert list((tmp_path / "tmp").iterdir()) == []  # no download left behind


def test_missing_credentials_for_the_s3_remote_are_named_and_never_asked_of_the_yaml(
    world, tmp_path, monkeypatch
):
    import s3fs

    from mlops_core.data import dvc_source

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()  # no client made with the credentials
    try:
        with pytest.raises(
            dvc_source.DvcSourceError, match=r"DVC remote 's3' .* refused .*NoCredentialsError.*environment"
        ):
            _ingest(world, _spec("s3"), tmp_path / "lake")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert not (tmp_path / "lake").exists()


def test_a_repository_outside_the_profiles_roots_is_refused_before_it_is_opened(world, tmp_path):
    from mlops_core.data import dvc_source
    from mlops_core.spec import profiles as clouds

    outside = tmp_path / "elsewhere"
    shutil.copytree(world.landing / NAME / "local-remote", outside)
    spec = _spec(dvc={"repo": outside.as_uri()})
    with pytest.raises(
        dvc_source.DvcSourceError,
        match=r"DVC repository file://.*/elsewhere is outside the roots cloud profile 'test' allows",
    ):
        _ingest(world, spec, tmp_path / "lake")
    # a profile that lists it as a source root admits it
    admitted = clouds.CloudProfile(**{**world.profile.__dict__, "source_roots": (outside.as_uri(),)})
    from mlops_core import lifecycle

    with clouds.using(admitted):
        assert lifecycle.ingest(spec, DS, (tmp_path / "lake").as_uri())["rows"] == 40


def test_the_ingest_operator_reads_a_dvc_source_through_the_cloud_profile(world, tmp_path, monkeypatch):
    """Through the Airflow operator: the profile's URI policy, the cloud context, the failure mode."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.data import IngestOperator

    monkeypatch.setenv("MLOPS_LANDING", str(world.landing))
    monkeypatch.setenv("MLOPS_LAKE", (tmp_path / "lake").as_uri())
    context = {"dag_run": SimpleNamespace(run_type="manual"), "triggering_asset_events": {}}
    op = IngestOperator(task_id="ingest", pipeline=_spec("local", "v2"), partition_date=DS)
    result = op.execute(context)
    assert result["rows"] == 60 and result["dvc"]["commit"] == world.versions["local"]["v2"]["commit"]
    # OpenLineage: the file in the repository, its DVC md5 (from the manifest) as its version
    (source,) = op._operator_lineage(context, result).inputs
    assert (source.namespace, source.name) == (
        f"dvc+file://{world.landing / NAME / 'local-remote'}",
        "data/train.csv",
    )
    assert source.facets["version"].datasetVersion == world.versions["local"]["v2"]["md5"]
    bad = IngestOperator(task_id="ingest", pipeline=_spec("local", "v9"), partition_date="2026-01-22")
    with pytest.raises(AirflowFailException, match="is not a branch, tag or commit"):
        bad.execute(context)
    assert not (tmp_path / "lake" / NAME / "raw" / "ds=2026-01-22").exists()


def test_a_damaged_copy_on_the_remote_is_refused_by_its_md5(world, tmp_path):
    """The remote's bytes are checked against the md5 the commit records, not trusted."""
    from mlops_core import lifecycle
    from mlops_core.data import dvc_source
    from mlops_core.spec import profiles as clouds

    repo, store = tmp_path / "repo", tmp_path / "store"
    shutil.copytree(world.landing / NAME / "local-remote", repo)
    shutil.copytree(world.base / "remotes" / "store", store)
    md5 = world.versions["local"]["v1"]["md5"]
    (store / "files" / "md5" / md5[:2] / md5[2:]).write_bytes(_rows(40, 9))  # same size, other rows
    _run(repo, "dvc", "remote", "add", "--local", "mirror", str(store))  # .dvc/config.local: not committed
    spec = _spec(dvc={"repo": repo.as_uri(), "remote": "mirror"})
    admitted = clouds.CloudProfile(**{**world.profile.__dict__, "source_roots": (tmp_path.as_uri(),)})
    with (
        clouds.using(admitted),
        pytest.raises(
            dvc_source.DvcSourceError,
            match=rf"read from remote 'mirror' has md5 [0-9a-f]{{32}}, but its .dvc file records {md5}",
        ),
    ):
        lifecycle.ingest(spec, DS, (tmp_path / "lake").as_uri())
    assert not (tmp_path / "lake").exists()
