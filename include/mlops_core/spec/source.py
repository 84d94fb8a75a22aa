"""The ``source`` section: where raw data comes from (a URI or a DVC-tracked path) and how the
logical date selects it; and the URI policy every source-like field (feature tables, labels) follows.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.spec.common import SpecModel

# Object stores and the local disk; never http(s), ftp, memory:// or a cloud metadata address.
SOURCE_SCHEMES = frozenset({"file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})


def check_source_uri(value: str) -> str:
    """The parse-time half of the URI policy (the run-time half, the profile's roots, is in clouds)."""
    if value.startswith(("${MLOPS_LANDING}/", "${MLOPS_LAKE}/")):
        rest = value.split("}", 1)[1]
    elif "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(
                f"scheme {scheme!r} is not allowed for a source; use the landing zone "
                f"(${{MLOPS_LANDING}}/...) or one of: {', '.join(sorted(SOURCE_SCHEMES))}"
            )
        rest = value.split("://", 1)[1]
    else:
        raise ValueError(
            "a source is a URI under the landing zone, e.g. ${MLOPS_LANDING}/<name>/data.csv, "
            "or s3://, gs://, abfs:// (relative and bare local paths are not allowed)"
        )
    if ".." in rest.split("/"):
        raise ValueError("a source URI may not contain '..'")
    return value


# A DVC source's repository: a local one (a ${VAR} path such as ${MLOPS_LANDING}/..., or file://)
# or a git URL. Never http, git://, scp-style user@host:path, credentials or a query.
DVC_REPO_SCHEMES = frozenset({"file", "https", "ssh"})
DVC_SCHEME = "dvc://"
_GIT_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_DVC_REMOTE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def check_dvc_repo(value: str, *, expanded: bool = False) -> str:
    """The parse-time rules of ``source.dvc.repo`` (re-applied at run time to the expanded value).

    ``${VAR}/...`` (a local repository, e.g. under ``${MLOPS_LANDING}``), ``file:///...``, or a git
    URL ``https://host/org/repo.git`` / ``ssh://git@host/org/repo.git``; no password or token in
    the URL (an ``ssh://`` user name is allowed), no query or fragment, no ``..``. ``expanded``:
    the value after ``${VAR}`` expansion, where an absolute local path is allowed too.
    """
    if any(c.isspace() or ord(c) < 32 for c in value) or "\\" in value or "?" in value or "#" in value:
        raise ValueError(
            "a DVC repo may not hold whitespace, control characters, '\\', a query ('?') or a fragment ('#')"
        )
    if value.startswith("${") and "}" in value and not expanded:
        rest = value.split("}", 1)[1]
    elif "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() not in DVC_REPO_SCHEMES:
            raise ValueError(
                f"scheme {scheme.lower()!r} is not allowed for a DVC repo; use one of: "
                f"{', '.join(sorted(DVC_REPO_SCHEMES))}"
            )
        user, at, _ = rest.split("/", 1)[0].rpartition("@")
        if at and (scheme.lower() != "ssh" or ":" in user):
            raise ValueError(
                "a DVC repo URL may not carry credentials (user:password@, or a token as the user of an "
                "https URL): the worker's git credential helper or ssh agent provides them"
            )
        if scheme.lower() == "file" and not rest.startswith("/"):
            raise ValueError("a file:// DVC repo is an absolute path: file:///srv/repos/data")
    elif expanded and value.startswith("/"):
        rest = value
    else:
        raise ValueError(
            "source.dvc.repo is a local repository such as ${MLOPS_LANDING}/<name>/repo or file:///..., or a "
            "git URL https://host/org/repo.git or ssh://git@host/org/repo.git (no relative or bare paths, no "
            "scp-style user@host:path)"
        )
    if ".." in rest.split("/"):
        raise ValueError("a DVC repo may not contain '..'")
    return value


def check_dvc_path(uri: str) -> str:
    """``source.uri`` of a DVC source: ``dvc://<path inside the repo>``, relative, no ``..``."""
    path = uri[len(DVC_SCHEME) :]
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(
            "with source.dvc, source.uri is a path inside the repository, e.g. dvc://data/train.csv "
            "(relative: no leading '/', no empty, '.' or '..' parts)"
        )
    if any(ord(c) < 32 for c in path) or any(c in path for c in "\\$?#"):
        raise ValueError("a dvc:// path may not hold control characters, '\\', '$', '?' or '#'")
    return uri


class PartitionSpec(SpecModel):
    """How the logical date selects source data.

    ``snapshot``: the whole source every run; ``column``: rows whose ``column`` falls in
    ``(ds - lookback_days, ds]``; ``files``: the source URI holds ``{ds}``, one file per day, and
    the last ``lookback_days`` files are read.
    """

    mode: Literal["snapshot", "column", "files"] = "snapshot"
    column: str | None = None
    lookback_days: int = Field(1, ge=1, le=3660)

    @model_validator(mode="after")
    def _column_needed(self) -> PartitionSpec:
        if self.mode == "column" and not self.column:
            raise ValueError(
                "partition.mode 'column' needs partition.column (the date column that selects rows)"
            )
        if self.mode != "column" and self.column:
            raise ValueError(f"partition.column is only used with mode 'column' (mode is {self.mode!r})")
        return self


class DvcSpec(SpecModel):
    """A DVC-tracked source: ``source.uri`` is ``dvc://<path in the repo>``, read at ``rev``.

    ``repo``: the DVC repository (:func:`check_dvc_repo`; at run time also the cloud profile's
    roots: a local repo under the landing zone or a ``source_roots`` entry, a git URL only when
    ``source_roots`` lists it). ``rev``: a tag, branch or commit; lineage records the full commit
    sha it resolves to and each file's DVC md5. ``remote``: a remote named in the repository's
    ``.dvc/config`` (default: its default remote). Credentials for the remote come from the
    worker's environment or the repository's own DVC config, never from this YAML.
    """

    repo: str = Field(min_length=1, max_length=1024)
    rev: str = Field(min_length=1, max_length=128)
    remote: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("repo")
    @classmethod
    def _repo_policy(cls, value: str) -> str:
        return check_dvc_repo(value)

    @field_validator("rev")
    @classmethod
    def _git_ref(cls, value: str) -> str:
        # a plain ref name: never an option (git reads a leading '-' as one) nor rev syntax (@{ ~ ^ :)
        if not _GIT_REF.match(value) or ".." in value or "//" in value or value.endswith(("/", ".", ".lock")):
            raise ValueError(
                "rev is a git tag, branch or commit: letters, digits and '_' first, then also '.', '-', '/'; "
                "no '..', '//', or a trailing '/', '.', '.lock'"
            )
        return value

    @field_validator("remote")
    @classmethod
    def _remote_name(cls, value: str | None) -> str | None:
        if value is not None and not _DVC_REMOTE.match(value):
            raise ValueError(
                "remote is the name of a DVC remote in the repository's .dvc/config: letters, digits and '_' "
                "first, then also '.', '-'"
            )
        return value


class SourceSpec(SpecModel):
    """Where raw data comes from. ``uri`` may use ``${ENV_VAR}``; ``conn_id`` names an Airflow connection.

    ``dvc``: the source is a DVC-tracked path (``uri: dvc://data/train.csv``) in that repository
    at that revision (:class:`DvcSpec`); snapshot, column and files modes all apply.

    ``wait_minutes``: a day with no rows yet is *not ready*, not failed: ``ingest`` waits
    (deferred, polling) until the rows arrive or until ``wait_minutes`` after the day ended,
    then fails. A day that ended longer ago than that (a backfill of an empty day) fails at once.
    """

    uri: str = Field(min_length=1)
    format: Literal["csv", "parquet"] = "csv"
    conn_id: str | None = None
    partition: PartitionSpec = PartitionSpec()
    wait_minutes: int = Field(180, ge=0, le=7 * 24 * 60)
    # CSV rows that do not parse (wrong field count, truncated line, a non-number in a numeric
    # column): up to this share of the rows is quarantined to the ``rejected`` stage; above it,
    # ingest fails naming the lines. 0: any malformed row fails ingest.
    max_rejected_share: float = Field(0.0, ge=0.0, le=0.2)
    dvc: DvcSpec | None = None

    @field_validator("uri")
    @classmethod
    def _uri_policy(cls, value: str) -> str:
        if value[: len(DVC_SCHEME)].lower() == DVC_SCHEME:
            return value  # a path inside source.dvc's repository: checked with it in _dvc_source
        return check_source_uri(value)

    @model_validator(mode="after")
    def _files_template(self) -> SourceSpec:
        if self.partition.mode == "files" and "{ds}" not in self.uri:
            raise ValueError("partition.mode 'files' needs '{ds}' in source.uri (e.g. .../events_{ds}.csv)")
        return self

    @model_validator(mode="after")
    def _dvc_source(self) -> SourceSpec:
        in_repo = self.uri[: len(DVC_SCHEME)].lower() == DVC_SCHEME
        if self.dvc is None:
            if in_repo:
                raise ValueError(
                    "a dvc:// source.uri needs source.dvc: {repo: ..., rev: ...} (the repository and the git "
                    "revision to read it at)"
                )
            return self
        if not in_repo:
            raise ValueError(
                "with source.dvc, source.uri is the path inside the repository: dvc://<path>, e.g. dvc://data/train.csv"
            )
        check_dvc_path(self.uri)
        if self.conn_id:
            raise ValueError(
                "source.conn_id is not used with source.dvc: DVC reads its remote with credentials from the "
                "worker's environment or the repository's .dvc/config.local; remove source.conn_id"
            )
        return self
