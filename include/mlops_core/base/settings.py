"""Where things live: project home, lake, landing zone and MLflow store.

Everything is overridable by environment variables so the same code runs in a test's temporary
directory, on a laptop (``make demo``) and in a container. Nothing here imports a heavy library.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection

# The active cloud profile's lake and landing roots (set by mlops_core.spec.profiles.using); they take
# precedence over the environment so one worker process can run pipelines of several profiles.
ROOTS: ContextVar[dict[str, str]] = ContextVar("mlops_roots", default={})  # noqa: B039 - never mutated


def home() -> Path:
    """Project root: ``$MLOPS_HOME``, else the repository that holds this package (a checkout),
    else Airflow's home (an installed wheel: ``$AIRFLOW_HOME``, Airflow's default ``~/airflow``)."""
    env = os.environ.get("MLOPS_HOME")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]  # .../mlops_core (this file is mlops_core/base/settings.py)
    if package.parent.name == "include" and (package.parent.parent / "include" / "clouds.yaml").is_file():
        return package.parent.parent  # a checkout: <repo>/include/mlops_core
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def local_dir() -> Path:
    """The git-ignored working area of the embedded default (``<home>/.local``)."""
    return Path(os.environ.get("MLOPS_LOCAL_DIR", str(home() / ".local")))


def file_uri(path: Path) -> str:
    """``file://`` + the absolute path as it is: fsspec's local filesystem reads a file URI's path
    literally, so ``Path.as_uri()``'s percent-encoding (a space as ``%20``) would name another folder."""
    return "file://" + path.absolute().as_posix()


def lake_root() -> str:
    """Root URI of the lake: the cloud profile's, else ``$MLOPS_LAKE``, else ``file://<home>/.local/lake``."""
    return ROOTS.get().get("MLOPS_LAKE") or os.environ.get("MLOPS_LAKE") or file_uri(local_dir() / "lake")


def landing_root() -> str:
    """Root URI of the landing zone: the cloud profile's, else ``$MLOPS_LANDING``, else ``.local/landing``."""
    return (
        ROOTS.get().get("MLOPS_LANDING")
        or os.environ.get("MLOPS_LANDING")
        or file_uri(local_dir() / "landing")
    )


# URIs this package derived itself (not from the environment). ``mlflow.set_tracking_uri`` writes
# its argument into ``$MLFLOW_TRACKING_URI`` (for subprocesses), so without this record the first
# derived store would stick for the life of the process even after ``MLOPS_LOCAL_DIR`` changed.
_DERIVED: set[str] = set()


def tracking_uri() -> str:
    """MLflow tracking URI: ``$MLFLOW_TRACKING_URI`` (when set by the user) or a SQLite store under ``.local/mlflow``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and env not in _DERIVED:
        return env
    db = local_dir() / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{db}"
    _DERIVED.add(uri)
    return uri


def artifact_root() -> str:
    """Artifact root for experiments this package creates: ``$MLOPS_ARTIFACTS`` or ``.local/mlflow/artifacts``."""
    return os.environ.get("MLOPS_ARTIFACTS") or (local_dir() / "mlflow" / "artifacts").as_uri()


def _defaults() -> dict[str, str]:
    return {
        "MLOPS_HOME": str(home()),
        "MLOPS_LAKE": lake_root(),
        "MLOPS_LANDING": landing_root(),
    }


def expand(value: str, declared: Collection[str] | None = None, *, trusted: bool = False) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from the environment, once.

    The grammar and the name rules are :mod:`mlops_core.base.envref`'s, the same the spec is checked
    with at parse time: no nesting, no credential-like name (unless ``trusted``: the operator's own
    cloud profiles file), and with ``declared`` (a pipeline's ``env:``) only ``MLOPS_*`` and those.
    ``MLOPS_HOME``, ``MLOPS_LAKE`` and ``MLOPS_LANDING`` always resolve (to their defaults when
    unset); any other unset variable without a default is a :class:`KeyError` that names it.
    The result never holds ``${``, so expanding it again changes nothing.
    """
    from mlops_core.base import envref

    defaults = _defaults()

    def lookup(name: str, default: str | None) -> str:
        if name in ROOTS.get():
            return ROOTS.get()[name]
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        if name in defaults:
            return defaults[name]
        raise KeyError(
            f"environment variable {name} is not set (used in {value!r}); export it or write ${{{name}:-default}}"
        )

    return envref.expand(value, lookup, declared, trusted=trusted)


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/@:\s]*):(?P<secret>[^/@\s]*)@", re.I)
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:sig|signature|token|access_token|key|api_key|apikey|secret|password|pwd|sv|se|sp|x-amz-signature|x-amz-credential|x-goog-signature|x-goog-credential)=)[^&#\s]*",
    re.I,
)


def redact(text: str) -> str:
    """``text`` with URL passwords and signed-URL / token query values replaced by ``***``.

    What the package writes to logs, manifests and MLflow tags goes through this, so a URI that
    carries a credential never lands there in clear.
    """
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group('key')}***", text)
