"""Cloud profiles: the one line of a pipeline YAML (``cloud:``) that decides where it runs.

A profile (``include/clouds.yaml``, or ``$MLOPS_CLOUDS_FILE``) names the lake and landing roots,
the Airflow connection, the training backend, the deployment target and the monitoring export
of one platform. Values hold ``${VAR:-default}`` and are expanded by :func:`resolve` when a task
runs, so DAG parsing never needs a cloud's settings. :func:`using` makes ``${MLOPS_LAKE}`` and
``${MLOPS_LANDING}`` (and :func:`mlops_core.base.settings.lake_root`) mean the profile's roots for the
code it wraps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

CloudName = Literal["local", "aws", "gcp", "azure"]
TrainingBackend = Literal["in_worker", "sagemaker", "vertex", "azureml"]
DeployTargetName = Literal["local", "sagemaker", "vertex", "azureml", "kserve"]
MonitoringExport = Literal["none", "cloudwatch", "cloud_monitoring", "azure_monitor"]

CLOUDS: tuple[str, ...] = get_args(CloudName)

# What a platform's SDK client or HTTP session is built from: ``clients("sagemaker")`` returns a
# boto3 client on AWS; on Google Cloud and Azure every service name returns an authorised
# ``requests.Session``-like object. The Airflow layer builds it from the profile's connection;
# tests pass recording or stubbed clients.
ClientFactory = Callable[[str], Any]


class CloudProfileError(ValueError):
    """A profile that cannot be used; the message names the profile, the field and the fix."""


@dataclass(frozen=True)
class CloudProfile:
    """One platform's resolved settings (every ``${VAR}`` expanded)."""

    name: str
    lake: str
    landing: str
    conn_id: str | None
    training_backend: str
    deploy_target: str
    monitoring_export: str
    settings: dict[str, str] = field(default_factory=dict)
    source_roots: tuple[str, ...] = ()

    def check_source(self, uri: str) -> str:
        """The run-time half of the URI policy: a source must lie under the landing zone or one of
        the profile's ``source_roots`` (never the lake, whose prefixes belong to pipelines).

        A ``dvc://`` URI is a path inside ``source.dvc.repo`` (the spec refuses ``..`` and absolute
        paths in it): the repository is what is checked, by :meth:`check_dvc_repo`, when
        :mod:`mlops_core.data.dvc_source` opens it.
        """
        from mlops_core.base.settings import expand

        if scheme(uri) == "dvc":
            return uri
        expanded = _normal(expand(uri))  # the spec's value, expanded once; the roots already are
        roots = [_normal(r) for r in (self.landing, *self.source_roots) if r]
        if not any(expanded.startswith(root.rstrip("/") + "/") for root in roots):
            raise CloudProfileError(
                f"source {_redacted(expanded)} is outside the roots cloud profile {self.name!r} allows for "
                f"sources ({', '.join(_redacted(r) for r in roots)}); move the data to the landing zone or "
                f"add its root to source_roots of the profile in {profiles_file()}"
            )
        return expanded

    def check_dvc_repo(self, repo: str) -> str:
        """The run-time policy of a DVC source's repository (``source.dvc.repo``, expanded).

        A local repository (a path or ``file://``) must lie under the landing zone or a
        ``source_roots`` entry, like any source. A git URL (``https://``, ``ssh://``) must be a
        ``source_roots`` entry (a trailing ``.git`` aside) or lie under one
        (``https://github.com/acme`` admits the acme repositories): the landing zone never admits
        a URL. The repository's committed ``.dvc/config`` then chooses the DVC remotes.

        :return: the local path (for a local repository) or the git URL, to open.
        """
        local = _scheme_of(repo) == "file"
        kinds = ("file",) if local else ("https", "ssh")
        target = _normal(repo)
        roots = [
            _normal(r).rstrip("/")
            for r in ((self.landing, *self.source_roots) if local else self.source_roots)
            if r and _scheme_of(r) in kinds
        ]
        if not any(_same_repo(target, root, local) or target.startswith(root + "/") for root in roots):
            allowed = ", ".join(_redacted(r) for r in roots) or "no git URL"
            raise CloudProfileError(
                f"DVC repository {_redacted(_normal(repo))} is outside the roots cloud profile {self.name!r} "
                f"allows for it ({allowed}); move it under the landing zone, or list it (a git URL: it or its "
                f"owner's URL, e.g. https://github.com/<org>) under source_roots of the profile in {profiles_file()}"
            )
        return _normal(repo).removeprefix("file://") if local else repo

    def setting(self, key: str) -> str:
        """A required platform setting; a missing or empty one is an error naming its variable."""
        value = self.settings.get(key, "")
        if not value:
            raise CloudProfileError(
                f"cloud profile {self.name!r} needs settings.{key}; set it in {profiles_file()} "
                "(or the environment variable it reads)"
            )
        return value


def profiles_file() -> Path:
    """``$MLOPS_CLOUDS_FILE``, else ``<home>/include/clouds.yaml``, else the copy inside the package.

    The packaged copy (the same file, shipped in the wheel) is what an installed package reads when
    the team has written no profiles file of its own: every value in it comes from the environment.
    """
    from mlops_core.base import settings

    env = os.environ.get("MLOPS_CLOUDS_FILE")
    if env:
        return Path(env)
    own = settings.home() / "include" / "clouds.yaml"
    if own.exists():
        return own
    from importlib.resources import files

    return Path(str(files("mlops_core") / "clouds.yaml"))


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict[str, dict[str, Any]]:
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise CloudProfileError(f"{path} must map profile names to settings")
    return raw


def raw_profiles() -> dict[str, dict[str, Any]]:
    """The profiles file as written (nothing expanded): cheap, safe at DAG parse."""
    path = profiles_file()
    if not path.exists():
        raise CloudProfileError(f"cloud profiles file {path} does not exist; set MLOPS_CLOUDS_FILE")
    return _load(str(path), path.stat().st_mtime)


_ALLOWED: dict[str, tuple[str, ...]] = {
    "training_backend": get_args(TrainingBackend),
    "deploy_target": get_args(DeployTargetName),
    "monitoring_export": get_args(MonitoringExport),
}


def resolve(name: str) -> CloudProfile:
    """Expand profile ``name`` from the environment and check its choices."""
    from mlops_core.base.settings import expand

    profiles = raw_profiles()
    if name not in profiles:
        raise CloudProfileError(
            f"cloud {name!r} has no profile in {profiles_file()}; profiles: {', '.join(sorted(profiles))}"
        )
    raw = profiles[name] or {}

    def text(key: str, default: str = "") -> str:
        value = raw.get(key, default)
        return "" if value is None else expand(str(value), trusted=True)  # the operator's own file

    values = {key: text(key, "none" if key == "monitoring_export" else "") for key in _ALLOWED}
    for key, allowed in _ALLOWED.items():
        if values[key] not in allowed:
            raise CloudProfileError(
                f"cloud profile {name!r}: {key} {values[key]!r} is not one of {', '.join(allowed)}"
            )
    lake, landing = text("lake"), text("landing")
    if not lake or not landing:
        raise CloudProfileError(f"cloud profile {name!r} needs both lake and landing")
    return CloudProfile(
        name=name,
        lake=lake.rstrip("/"),
        landing=landing.rstrip("/"),
        conn_id=text("conn_id") or None,
        settings={
            str(k): expand(str(v), trusted=True)
            for k, v in (raw.get("settings") or {}).items()
            if v is not None
        },
        source_roots=tuple(
            expand(str(r), trusted=True).rstrip("/") for r in raw.get("source_roots") or [] if r
        ),
        **values,
    )


def _normal(value: str) -> str:
    """An expanded URI with ``file://`` for local paths, ``.``/``..`` resolved, so a prefix test
    means containment. Never expands (the value already is: expanding twice is what lets a
    variable's value smuggle in a reference)."""
    import posixpath

    head, sep, rest = value.partition("://")
    if not sep:
        head, rest = "file", value
    path = posixpath.normpath("/" + rest.lstrip("/")) if head == "file" else posixpath.normpath(rest)
    return f"{head.lower()}://{path}" if head != "file" else f"file://{path}"


def _same_repo(repo: str, root: str, local: bool) -> bool:
    """``repo`` is ``root`` (git URLs: ``x`` and ``x.git`` are one repository on every git host)."""
    return repo == root if local else repo.removesuffix(".git") == root.removesuffix(".git")


def _redacted(uri: str) -> str:
    from mlops_core.base.settings import redact

    return redact(uri)


# The profile :func:`using` made active: the core's own run-time checks (a DVC source's
# repository, opened deep in the reader) apply its roots.
_ACTIVE: ContextVar[CloudProfile | None] = ContextVar("mlops_profile", default=None)


def active() -> CloudProfile | None:
    """The profile of the enclosing :func:`using` block, if any."""
    return _ACTIVE.get()


@contextmanager
def using(profile: CloudProfile) -> Iterator[CloudProfile]:
    """Within the block, ``${MLOPS_LAKE}``/``${MLOPS_LANDING}`` and the lake root are the profile's."""
    from mlops_core.base import settings

    token = settings.ROOTS.set({"MLOPS_LAKE": profile.lake, "MLOPS_LANDING": profile.landing})
    current = _ACTIVE.set(profile)
    try:
        yield profile
    finally:
        _ACTIVE.reset(current)
        settings.ROOTS.reset(token)


def scheme(uri: str) -> str:
    """``s3``, ``gs``, ``abfs``... or ``file`` for a path or file:// URI."""
    from mlops_core.base.settings import expand

    return _scheme_of(expand(uri))


def _scheme_of(value: str) -> str:
    """:func:`scheme` of an already expanded value."""
    head, sep, _ = value.partition("://")
    return head if sep else "file"
