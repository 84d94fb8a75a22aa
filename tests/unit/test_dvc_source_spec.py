"""The parse-time and run-time rules of a DVC source (``source.dvc``), and that parsing stays cheap.

The reading itself is tested against real git + DVC repositories in
``tests/emulators/test_dvc_source.py``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from mlops_core.spec import SpecError, parse_spec
from tests.helpers import example_data

pytestmark = pytest.mark.unit

LANDING_REPO = "${MLOPS_LANDING}/breast_cancer/repo"


def _data(uri: str = "dvc://data/train.csv", **dvc: Any) -> dict[str, Any]:
    source = {"uri": uri, "partition": {"mode": "snapshot"}}
    if dvc:
        source["dvc"] = {k: v for k, v in dvc.items() if v is not ...}
    return example_data(source=source)


def _refused(data: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        parse_spec(data)


@pytest.mark.parametrize(
    "repo",
    [
        LANDING_REPO,
        "${MLOPS_DVC_REPO}",
        "file:///srv/repos/data",
        "https://github.com/acme/data.git",
        "ssh://git@github.com/acme/data.git",
    ],
)
@pytest.mark.parametrize("rev", ["v1", "main", "release/2026-01", "0123456789abcdef0123456789abcdef01234567"])
def test_a_dvc_source_parses(repo, rev):
    spec = parse_spec(_data(repo=repo, rev=rev, remote="s3store"))
    assert spec.source.dvc is not None
    assert (spec.source.dvc.repo, spec.source.dvc.rev, spec.source.dvc.remote) == (repo, rev, "s3store")
    assert spec.source.uri == "dvc://data/train.csv"


def test_every_partition_mode_works_with_a_dvc_source():
    column = example_data(
        source={
            "uri": "dvc://data/train.csv",
            "partition": {"mode": "column", "column": "event_date"},
            "dvc": {"repo": LANDING_REPO, "rev": "v1"},
        }
    )
    assert parse_spec(column).source.partition.mode == "column"
    files = _data("dvc://data/events/day_{ds}.csv", repo=LANDING_REPO, rev="v1")
    files["source"]["partition"] = {"mode": "files", "lookback_days": 3}
    assert parse_spec(files).source.partition.mode == "files"
    files["source"]["uri"] = "dvc://data/events/all.csv"
    _refused(files, r"partition.mode 'files' needs '\{ds\}'")


@pytest.mark.parametrize(
    ("repo", "match"),
    [
        ("http://git.example.com/data.git", "scheme 'http' is not allowed for a DVC repo"),
        ("git://git.example.com/data.git", "scheme 'git' is not allowed"),
        ("s3://bucket/repo", "scheme 's3' is not allowed"),
        ("https://user:secret@github.com/acme/data.git", "may not carry credentials"),
        ("https://ghp_token@github.com/acme/data.git", "may not carry credentials"),
        ("ssh://git:secret@github.com/acme/data.git", "may not carry credentials"),
        ("https://github.com/acme/data.git?private_token=x", "a query"),
        ("git@github.com:acme/data.git", "no scp-style"),
        ("/srv/repos/data", "no relative or bare paths"),
        ("repos/data", "no relative or bare paths"),
        ("${MLOPS_LANDING}/../etc", r"may not contain '\.\.'"),
        ("https://github.com/acme/../evil/data.git", r"may not contain '\.\.'"),
        ("file://server/share/repo", "absolute path"),
        ("${MLOPS_LANDING}/my repo", "whitespace"),
    ],
)
def test_a_dvc_repo_outside_the_policy_is_refused_at_parse(repo, match):
    _refused(_data(repo=repo, rev="v1"), match)


def test_a_dvc_repo_may_not_read_a_credential_variable():
    _refused(_data(repo="${GITHUB_TOKEN}", rev="v1"), "looks like a credential")


@pytest.mark.parametrize(
    "rev",
    [
        "--upload-pack=touch /tmp/x",
        "-v1",
        "v1..v2",
        "a//b",
        "v1/",
        "v1.",
        "topic.lock",
        "HEAD@{1}",
        "v1~1",
        "v 1",
        "x" * 129,
        "",
    ],
)
def test_a_rev_that_is_not_a_plain_git_name_is_refused(rev):
    _refused(_data(repo=LANDING_REPO, rev=rev), r"source.dvc.rev")


@pytest.mark.parametrize("remote", ["-r", "my remote", "a/b", "x" * 65])
def test_a_remote_that_is_not_a_plain_name_is_refused(remote):
    _refused(_data(repo=LANDING_REPO, rev="v1", remote=remote), r"source.dvc.remote")


def test_rev_is_required_and_unknown_keys_are_refused():
    _refused(_data(repo=LANDING_REPO, rev=...), r"source.dvc.rev: required field is missing")
    _refused(
        _data(repo=LANDING_REPO, rev="v1", password="x"),
        r"source.dvc.password: unknown field",
    )


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("dvc:///etc/passwd", "relative: no leading '/'"),
        ("dvc://../secrets.csv", r"no empty, '\.' or '\.\.' parts"),
        ("dvc://data/../../x.csv", r"'\.\.'"),
        ("dvc://data//x.csv", "no empty"),
        ("dvc://", "no empty"),
        ("dvc://${MLOPS_LANDING}/x.csv", r"may not hold .*'\$'"),
        ("dvc://data/x.csv?version=2", r"'\?'"),
    ],
)
def test_a_dvc_path_is_relative_to_the_repo(uri, match):
    _refused(_data(uri, repo=LANDING_REPO, rev="v1"), match)


def test_dvc_uris_and_dvc_settings_go_together():
    _refused(_data("dvc://data/train.csv"), r"a dvc:// source.uri needs source.dvc")
    _refused(_data("DVC://data/train.csv"), r"a dvc:// source.uri needs source.dvc")
    _refused(
        _data("${MLOPS_LANDING}/breast_cancer/train.csv", repo=LANDING_REPO, rev="v1"),
        r"with source.dvc, source.uri is the path inside the repository: dvc://<path>",
    )
    data = _data(repo=LANDING_REPO, rev="v1")
    data["source"]["conn_id"] = "partner"
    _refused(data, r"source.conn_id is not used with source.dvc.*\.dvc/config.local")


def test_feedback_labels_can_never_be_a_dvc_uri():
    data = example_data(
        feedback={"uri": "dvc://labels.csv", "key_columns": ["record_id"], "partition": {"mode": "snapshot"}}
    )
    _refused(data, "scheme 'dvc' is not allowed for a source")


def test_the_plain_source_policy_is_unchanged():
    _refused(example_data(source={"uri": "memory://x.csv"}), "scheme 'memory' is not allowed")
    _refused(example_data(source={"uri": "${MLOPS_LANDING}/../x.csv"}), r"may not contain '\.\.'")
    assert parse_spec(example_data()).source.dvc is None


def _profile(**changes: Any) -> Any:
    from mlops_core.spec import profiles as clouds

    values = {
        "name": "test",
        "lake": "file:///data/lake",
        "landing": "file:///data/landing",
        "conn_id": None,
        "training_backend": "in_worker",
        "deploy_target": "local",
        "monitoring_export": "none",
    } | changes
    return clouds.CloudProfile(**values)


def test_the_profile_admits_dvc_paths_and_checks_the_repository_instead():
    from mlops_core.spec import profiles as clouds

    profile = _profile()
    assert profile.check_source("dvc://data/train.csv") == "dvc://data/train.csv"
    assert (
        profile.check_dvc_repo("file:///data/landing/breast_cancer/repo")
        == "/data/landing/breast_cancer/repo"
    )
    assert profile.check_dvc_repo("/data/landing/breast_cancer/repo") == "/data/landing/breast_cancer/repo"
    for outside in (
        "/data/lake/breast_cancer/repo",
        "/data/landing.git",
        "/data/landing/../etc",
        "file:///etc",
    ):
        with pytest.raises(
            clouds.CloudProfileError, match="is outside the roots cloud profile 'test' allows"
        ):
            profile.check_dvc_repo(outside)
    with pytest.raises(clouds.CloudProfileError, match=r"allows for it \(no git URL\)"):
        profile.check_dvc_repo("https://github.com/acme/data.git")  # the landing zone never admits a URL


@pytest.mark.parametrize(
    ("root", "repo", "admitted"),
    [
        ("https://github.com/acme", "https://github.com/acme/data.git", True),
        ("https://github.com/acme/", "https://github.com/acme/team/data", True),
        ("https://github.com/acme/data", "https://github.com/acme/data.git", True),
        ("https://github.com/acme/data.git", "https://github.com/acme/data", True),
        ("https://github.com/acme", "https://github.com/acme-evil/data.git", False),
        ("https://github.com/acme", "https://github.com/acme.git", True),  # the same name, .git aside
        ("https://github.com/acme/data", "https://github.com/acme/data-private.git", False),
        ("https://github.com/acme", "ssh://git@github.com/acme/data.git", False),
        ("ssh://git@github.com/acme", "ssh://git@github.com/acme/data.git", True),
        ("s3://bucket/repos", "https://github.com/acme/data.git", False),
        ("file:///srv/repos", "/srv/repos/data", True),
        ("file:///srv/repos", "/srv/repos-other/data", False),
    ],
)
def test_source_roots_decide_which_repositories_a_profile_reads(root, repo, admitted):
    from mlops_core.spec import profiles as clouds

    profile = _profile(source_roots=(root,))
    if admitted:
        assert profile.check_dvc_repo(repo)
    else:
        with pytest.raises(clouds.CloudProfileError, match="is outside the roots"):
            profile.check_dvc_repo(repo)


def test_the_repository_is_checked_again_at_run_time_after_expansion(monkeypatch, tmp_path):
    from mlops_core.data import dvc_source
    from mlops_core.spec import profiles as clouds

    spec = parse_spec(_data(repo="${MLOPS_DVC_REPO}", rev="v1"))
    profile = _profile(source_roots=("https://github.com/acme",))
    monkeypatch.delenv("MLOPS_DVC_REPO", raising=False)
    with pytest.raises(dvc_source.DvcSourceError, match="environment variable MLOPS_DVC_REPO is not set"):
        dvc_source.check_repo(spec.source.dvc, profile)
    for value, match in [
        ("https://user:secret@github.com/acme/data.git", r"user:\*\*\*@.*may not carry credentials"),
        ("http://github.com/acme/data.git", "scheme 'http' is not allowed"),
        ("relative/repo", "no relative or bare paths"),
        ("https://github.com/other/data.git", "is outside the roots cloud profile 'test'"),
    ]:
        monkeypatch.setenv("MLOPS_DVC_REPO", value)
        with pytest.raises(dvc_source.DvcSourceError, match=match) as err:
            dvc_source.check_repo(spec.source.dvc, profile)
        assert "secret" not in str(err.value)
    monkeypatch.setenv("MLOPS_DVC_REPO", "https://github.com/acme/data.git")
    assert dvc_source.check_repo(spec.source.dvc, profile) == "https://github.com/acme/data.git"
    with clouds.using(profile):  # the active profile is the default
        assert dvc_source.check_repo(spec.source.dvc) == "https://github.com/acme/data.git"
    # no profile active (a notebook): the landing zone only, never a git URL
    monkeypatch.setenv("MLOPS_LANDING", str(tmp_path / "landing"))
    with pytest.raises(dvc_source.DvcSourceError, match="no git URL"):
        dvc_source.check_repo(spec.source.dvc)
    monkeypatch.setenv("MLOPS_DVC_REPO", str(tmp_path / "landing" / "repo"))
    assert dvc_source.check_repo(spec.source.dvc) == str(tmp_path / "landing" / "repo")


def test_a_dvc_uri_is_never_opened_as_a_plain_filesystem():
    from mlops_core.data import filesystems
    from mlops_core.data.errors import SourceDataError

    with pytest.raises(SourceDataError, match="is read by mlops_core.data.dvc_source"):
        filesystems.filesystem("dvc://data/train.csv")  # fsspec would open the working directory's repo


def test_parsing_a_dvc_pipeline_imports_nothing_of_dvc():
    code = (
        "import sys\n"
        "import mlops_core.spec, mlops_core.data.storage, mlops_core.data.sources, mlops_core.lifecycle, mlops_core.spec.profiles, mlops_core.data.dvc_source\n"
        "from tests.helpers import example_data\n"
        "data = example_data(source={'uri': 'dvc://data/train.csv', 'partition': {'mode': 'snapshot'},"
        " 'dvc': {'repo': '${MLOPS_LANDING}/r', 'rev': 'v1'}})\n"
        "mlops_core.spec.parse_spec(data)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'dvc', 'dvc_data', 'dvc_objects', 'scmrepo', 'pandas'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
