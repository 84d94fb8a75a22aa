"""Sources in a DVC repository: a DVC-tracked path, read at a git revision through ``DVCFileSystem``.

A pipeline's ``source.dvc`` names the repository and the revision (tag, branch or commit);
``source.uri`` is ``dvc://<path in the repo>``. :func:`fetch` opens the repository at that
revision once, resolves it to its full commit sha, and streams each file of the run's window
from the DVC cache or the DVC remote into a temporary folder, checking it against the md5 its
``.dvc`` file records, so what is read is exactly what lineage names. The storage reader then
reads those local files (:func:`mlops_core.data.sources.read_source_with_lineage`); the lake's
manifest records ``{"dvc": {repo, rev, commit, remote, files: [{path, md5, size}]}}``.

Trust: the repository must pass the cloud profile's source policy
(:meth:`mlops_core.spec.profiles.CloudProfile.check_dvc_repo`); within it, its committed ``.dvc/config``
chooses the remotes. The remote's credentials come from the worker's environment or the repo's
own DVC config (``.dvc/config.local``), never from the pipeline YAML.

Nothing here imports DVC at module level (parse time stays cheap): ``dvc`` is imported inside
the functions that open a repository.
"""

from __future__ import annotations

import logging
import re
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_core.base.settings import expand, redact
from mlops_core.data.errors import SourceDataError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from fsspec import AbstractFileSystem

    from mlops_core.spec import DvcSpec, SourceSpec
    from mlops_core.spec.profiles import CloudProfile

log = logging.getLogger(__name__)

SCHEME = "dvc://"
_CHUNK = 1 << 20
_COMMIT = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # sha-1, or sha-256 object format
_UNREACHABLE = frozenset(
    {
        "ConnectionError",  # builtins and botocore's
        "TimeoutError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
    }
)
_REFUSED = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "PermissionError", "ClientAuthenticationError"}
)


class DvcSourceError(SourceDataError):
    """A DVC source that cannot be read as its spec says (repository, revision, path, remote,
    credentials, content). Retrying will not help; the message names the problem and the fix."""


class DvcRemoteUnavailable(ConnectionError):
    """The DVC remote did not answer (network, endpoint). Not a :class:`SourceDataError`: the
    task's retries may get through; the message names the remote and what to check."""


@dataclass(frozen=True)
class DvcFile:
    """One file read from the repository: its path there, DVC's content hash and its size."""

    path: str
    md5: str
    size: int
    hash: str = "md5"  # DVC 3 files hash the bytes; "md5-dos2unix": DVC 2's text hash


@dataclass
class Fetched:
    """A DVC source pinned to one commit, its window's files downloaded to ``folder``."""

    repo: str
    rev: str
    commit: str
    remote: str | None
    folder: Path
    files: list[DvcFile]

    def locate(self, uri: str) -> tuple[AbstractFileSystem, str]:
        """Where the reader finds ``dvc://<path>``: its downloaded copy (absent if not in the commit)."""
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(self.folder / path_in_repo(uri))

    def lineage(self) -> dict[str, Any]:
        """What the manifest records: the revision as written, its commit, the remote, each file's md5."""
        return {
            "repo": self.repo,
            "rev": self.rev,
            "commit": self.commit,
            "remote": self.remote,
            "files": [asdict(f) for f in self.files],
        }


def is_dvc_uri(uri: str) -> bool:
    """``dvc://...``: a path inside ``source.dvc``'s repository."""
    return uri[: len(SCHEME)].lower() == SCHEME


def path_in_repo(uri: str) -> str:
    """``dvc://data/train.csv`` -> ``data/train.csv``."""
    return uri[len(SCHEME) :]


def _landing_only() -> CloudProfile:
    """With no cloud profile active (a notebook): sources only under the landing zone, no git URLs."""
    from mlops_core.base import settings
    from mlops_core.spec import profiles as clouds

    return clouds.CloudProfile(
        name="(none active: landing zone only)",
        lake=settings.lake_root(),
        landing=settings.landing_root(),
        conn_id=None,
        training_backend="in_worker",
        deploy_target="local",
        monitoring_export="none",
    )


def check_repo(dvc: DvcSpec, profile: CloudProfile | None = None) -> str:
    """The repository to open: ``source.dvc.repo`` expanded, re-checked by the spec's rules (a
    variable may hold anything) and by the profile's roots (default: the active profile).

    :return: a local path (for a local repository) or the git URL.
    :raises DvcSourceError: naming what is wrong and the fix.
    """
    from mlops_core.spec import check_dvc_repo
    from mlops_core.spec import profiles as clouds

    value = dvc.repo
    try:
        value = expand(dvc.repo)
        check_dvc_repo(value, expanded=True)
        return (profile or clouds.active() or _landing_only()).check_dvc_repo(value)
    except (KeyError, ValueError) as err:  # CloudProfileError is a ValueError
        text = err.args[0] if isinstance(err, KeyError) else str(err)
        shown = redact(dvc.repo) + (f" (= {redact(value)})" if value != dvc.repo else "")
        raise DvcSourceError(f"source.dvc.repo {shown}: {text}") from None


@contextmanager
def fetch(source: SourceSpec, uris: Sequence[str], *, required: bool = True) -> Iterator[Fetched]:
    """Open ``source.dvc``'s repository at its revision and download the files ``uris`` name.

    Every file is read at the one commit the revision resolves to (a tag that moves meanwhile
    changes nothing) and checked against its DVC md5. The temporary folder (and a clone of a git
    URL) is removed on exit, so read the files inside the ``with`` block.

    :param uris: ``dvc://`` URIs of the run's window (one, or one per day in ``files`` mode).
    :param required: a missing path is an error (snapshot and column modes); without it, missing
        paths are left out (``files`` mode: the reader decides whether the day is ready).
    :raises DvcSourceError: unknown revision, missing path, a path git tracks but DVC does not, an
        undefined remote, data on neither the cache nor the remote, refused credentials, a hash
        mismatch. Nothing has been written anywhere when it is raised.
    :raises DvcRemoteUnavailable: the remote did not answer.
    """
    dvc = source.dvc
    if dvc is None:
        raise ValueError(f"source {redact(source.uri)} has no source.dvc")
    location = check_repo(dvc)
    shown = redact(location)
    fs = _open(location, dvc, shown)
    try:
        commit = _commit(fs, dvc, shown)
        remote, url = _remote(fs, dvc, shown, commit)
        where = f"{shown} at rev {dvc.rev!r} (commit {commit[:12]})"
        with tempfile.TemporaryDirectory(prefix="mlops-dvc-") as tmp:
            files = []
            for uri in uris:
                with _remote_errors(f"{SCHEME}{path_in_repo(uri)} in {where}", remote, url, commit):
                    entry = _tracked(fs, path_in_repo(uri), where, required=required)
                    if entry is not None:
                        files.append(_download(fs, entry, Path(tmp), where, remote))
            log.info(
                "DVC source %s: %d file(s) from %s at %s, remote %s",
                redact(source.uri),
                len(files),
                shown,
                commit,
                remote,
            )
            yield Fetched(shown, dvc.rev, commit, remote, Path(tmp), files)
    finally:
        fs.close()
        if "://" in location:  # a git URL: DVC cloned it into a temporary folder
            from dvc.repo.open_repo import clean_repos

            clean_repos()


def _open(location: str, dvc: DvcSpec, shown: str) -> Any:
    """``DVCFileSystem`` at the revision (lazy: the repository opens on first use)."""
    from dvc.api import DVCFileSystem

    if "://" not in location and not (Path(location) / ".dvc").is_dir():
        what = "does not exist" if not Path(location).exists() else "is not a DVC repository (no .dvc folder)"
        raise DvcSourceError(
            f"source.dvc.repo {shown} {what}: point source.dvc.repo at the repository's root "
            "(where `git init` and `dvc init` ran)"
        )
    return DVCFileSystem(location, rev=dvc.rev, remote=dvc.remote)


def _commit(fs: Any, dvc: DvcSpec, shown: str) -> str:
    """The full sha of the commit ``dvc.rev`` names."""
    from dvc.exceptions import DvcException
    from dvc.scm import CloneError, RevError, SCMError, resolve_rev

    try:
        commit = str(fs.repo.get_rev())
        if not _COMMIT.match(commit):
            commit = str(resolve_rev(fs.repo.scm, dvc.rev))
    except RevError:
        raise DvcSourceError(
            f"source.dvc.rev {dvc.rev!r} is not a branch, tag or commit of {shown}: fix source.dvc.rev "
            "(`git tag` / `git branch -a` in the repository list them), or push that tag or branch there"
        ) from None
    except CloneError as err:
        raise DvcSourceError(
            f"source.dvc.repo {shown} could not be cloned ({err}): check the URL, and that the worker can "
            "reach it with credentials from its environment (ssh agent, git credential helper)"
        ) from None
    except SCMError as err:
        raise DvcSourceError(
            f"source.dvc.repo {shown} is not a git repository ({err}): run `git init` there"
        ) from None
    except DvcException as err:  # a broken .dvc/config and the like
        raise DvcSourceError(
            f"source.dvc.repo {shown} at rev {dvc.rev!r}: {type(err).__name__}: {err}"
        ) from None
    return commit


def _remote(fs: Any, dvc: DvcSpec, shown: str, commit: str) -> tuple[str | None, str]:
    """The remote the read falls back to (``source.dvc.remote``, else the repo's default) and its URL."""
    config = fs.repo.config
    remotes = dict(config.get("remote") or {})
    name = dvc.remote or (config.get("core") or {}).get("remote")
    if dvc.remote and dvc.remote not in remotes:
        raise DvcSourceError(
            f"{shown} at commit {commit[:12]} defines no DVC remote {dvc.remote!r} (its remotes: "
            f"{', '.join(sorted(remotes)) or 'none'}); fix source.dvc.remote, or `dvc remote add` it in the "
            "repository and commit .dvc/config"
        )
    return name, redact(str((remotes.get(name) or {}).get("url") or "")) if name else ""


def _tracked(fs: Any, path: str, where: str, *, required: bool) -> DvcFile | None:
    """The DVC entry of ``path`` at the commit; None when absent and not ``required``."""
    try:
        info = fs.info(path)
    except FileNotFoundError:
        if not required:
            return None
        raise DvcSourceError(
            f"{SCHEME}{path} is not in {where}: fix source.uri (or source.dvc.rev), or `dvc add` the file, "
            f"`dvc push` it and commit its .dvc file there (`dvc list --rev <rev> <repo> --dvc-only -R` lists "
            "what DVC tracks)"
        ) from None
    if info.get("type") != "file":
        raise DvcSourceError(f"{SCHEME}{path} in {where} is a directory: source.uri names one file in it")
    dvc_info = info.get("dvc_info") or {}
    hash_info = getattr(dvc_info.get("entry"), "hash_info", None)
    md5 = dvc_info.get("md5") or getattr(hash_info, "value", None)
    if not md5:
        raise DvcSourceError(
            f"{SCHEME}{path} in {where} is tracked by git, not by DVC, so it has no DVC content hash for "
            "lineage: `dvc add` it (and `dvc push`), or read it from the landing zone as a plain source"
        )
    name = str(getattr(hash_info, "name", None) or "md5")
    return DvcFile(path, str(md5), int(dvc_info.get("size") or info.get("size") or 0), name)


def _download(fs: Any, entry: DvcFile, folder: Path, where: str, remote: str | None) -> DvcFile:
    """Stream one file from the cache or the remote into ``folder``, hashing it as DVC does."""
    from dvc_data.hashfile.hash import get_hash_stream

    target = folder / entry.path
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with fs.open(entry.path, "rb") as src, target.open("wb") as out:
        stream = get_hash_stream(src, name=entry.hash)
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
            size += len(chunk)
    if stream.hash_value != entry.md5:
        raise DvcSourceError(
            f"{SCHEME}{entry.path} in {where} read from remote {remote!r} has md5 {stream.hash_value}, but its "
            f".dvc file records {entry.md5}: the remote's copy is damaged or was overwritten; `dvc push` it again "
            "from a good cache"
        )
    return DvcFile(entry.path, entry.md5, size, entry.hash)


@contextmanager
def _remote_errors(what: str, remote: str | None, url: str, commit: str) -> Iterator[None]:
    """DVC's, fsspec's and the cloud SDK's errors while reading ``what``, as one message naming the fix."""
    try:
        yield
    except SourceDataError:
        raise
    except Exception as err:  # noqa: BLE001 - each kind is mapped; the original stays as __cause__
        raise _remote_error(err, what, remote, url, commit) from err


def _remote_error(err: Exception, what: str, remote: str | None, url: str, commit: str) -> Exception:
    names = {kind.__name__ for kind in type(err).__mro__}
    named = f"DVC remote {remote!r} ({url})" if remote else "no DVC remote (the repository sets no default)"
    detail = f"{type(err).__name__}: {redact(str(err))[:300]}"
    if names & _UNREACHABLE:
        return DvcRemoteUnavailable(
            f"{named} did not answer while reading {what} ({detail}); check the worker's network and the "
            "remote's url / endpointurl in the repository's .dvc/config, or choose another remote with "
            "source.dvc.remote"
        )
    if names & _REFUSED or _status(err) in (401, 403):
        return DvcSourceError(
            f"{named} refused to serve {what} ({detail}): give the worker credentials for it in its environment "
            "(AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*) or in the repository's .dvc/config.local; a "
            "pipeline YAML never carries them"
        )
    if isinstance(err, FileNotFoundError) or _status(err) == 404:
        push = f"dvc push -r {remote}" if remote else "dvc push"
        return DvcSourceError(
            f"the data of {what} is neither in the repository's DVC cache nor on {named} ({detail}): `{push}` "
            f"it from the repository that made commit {commit[:12]}, or choose the remote that has it with "
            "source.dvc.remote"
        )
    return DvcSourceError(f"reading {what} from {named} failed ({detail})")


def _status(err: Exception) -> int | None:
    """The HTTP status of a cloud SDK's error, when it carries one (botocore's ClientError)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return int(code) if isinstance(code, int) else None
    return None
