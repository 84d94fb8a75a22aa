"""MLflow 3 model registry: registration bound to one trained model, lineage tags and the three aliases.

``challenger``: the latest version that went through the gate and was registered.
``champion``: what is deployed (for the local target, *the* deployment).
``previous_champion``: what ``champion`` pointed to before the last promotion (the rollback target).

Registry errors fail closed. Only MLflow's ``RESOURCE_DOES_NOT_EXIST`` (the registered model is
not there) means "no such model"; a missing alias is read from the model's alias map, never
guessed from an error. Any other failure (connection refused, 403, 5xx, SQLite "database is
locked") raises :class:`RegistryUnavailable`, so the task fails and Airflow retries it: a registry
outage can never be mistaken for "no champion yet" and promote a model on its floors alone.

Tags a registered version carries (besides the Airflow lineage tags)::

    mlops.airflow_run        dag_id/run_id of the Airflow run that registered it (the run key)
    mlops.run_id             MLflow run that trained it (one version per trained run)
    mlops.model_uri          the logged model it was registered from (models:/m-...)
    mlops.model_id           that logged model's id (m-...)
    mlops.model_sha256       digest of the model's artifact files (a copy: loads and deploys check
                             the run's param of the same name, which cannot be changed)
    mlops.gate               the gate outcome: promote | forced | reject
    mlops.gate_reasons       the gate's reasons
    mlops.evaluated_against  champion version the challenger was compared with, or "none"
    mlops.superseded_by      set on an older version of the same Airflow run (a cleared task retrained)
    mlops.rolled_back        "true" after a failed smoke test / promotion rolled it back
    mlops.release_seal       the release steps' seal over decision, run and digest (mlops_core.runs.release);
                             deploy refuses a version whose tags no longer match it
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from mlops_core.base import settings
from mlops_core.runs import release, tracking

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"
# deployment.challenger: the version on the canary split, judged live (mlops_core.challenger)
LIVE_CHALLENGER = "live_challenger"
# deployment.shadow: the version scored beside the champion on every row, judged on its predictions
SHADOW = "shadow"
RUN_KEY_TAG = "mlops.airflow_run"
RUN_ID_TAG = "mlops.run_id"
MODEL_URI_TAG = "mlops.model_uri"
MODEL_ID_TAG = "mlops.model_id"
DIGEST_TAG = "mlops.model_sha256"
GATE_TAG = "mlops.gate"
REASONS_TAG = "mlops.gate_reasons"
AGAINST_TAG = "mlops.evaluated_against"
SUPERSEDED_TAG = "mlops.superseded_by"
NO_CHAMPION = "none"
DEPLOYABLE = ("promote", "forced")

_MISSING = "RESOURCE_DOES_NOT_EXIST"
_UNCHECKED: Any = object()
# Expected champion per model while a deploy runs (:func:`champion_guard`).
_EXPECTED: ContextVar[dict[str, str | None]] = ContextVar("mlops_expected_champion", default={})  # noqa: B039


class RegistryUnavailable(RuntimeError):
    """The registry could not answer (down, forbidden, locked...): fail closed and retry later."""


class ChampionMoved(RuntimeError):
    """``champion`` no longer points at the version the challenger was evaluated against."""


class DecisionRefused(RuntimeError):
    """The registry's gate decision for this exact version does not allow a deploy."""

    def __init__(self, message: str, outcome: str | None):
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Ruling:
    """The gate decision recorded on a model version (the registry's word, not an XCom's)."""

    version: str
    outcome: str | None
    evaluated_against: str | None
    reasons: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None  # the MLflow run the version was created from (the registry's, not a tag)


def client() -> MlflowClient:
    return tracking.configure()


def is_missing(err: BaseException) -> bool:
    """True only for MLflow's "does not exist" answer (local store or a tracking server's JSON error).

    A proxy's bare 404 maps to ``ENDPOINT_NOT_FOUND``, a locked SQLite store to
    ``TEMPORARILY_UNAVAILABLE``, a refused connection to ``INTERNAL_ERROR``: none of them is "missing".
    """
    from mlflow.exceptions import MlflowException

    return isinstance(err, MlflowException) and err.error_code == _MISSING


def _where() -> str:
    """The tracking URI without credentials (``https://user:token@host`` -> ``https://host``)."""
    uri = settings.tracking_uri()
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return uri


def _hint(err: BaseException) -> str:
    text = f"{getattr(err, 'error_code', '')} {err}".lower()
    if "database is locked" in text:
        return "another writer holds the SQLite store; retry, or run MLflow on a server with PostgreSQL"
    if "permission_denied" in text or "unauthenticated" in text or " 403" in text or " 401" in text:
        return "check the MLflow credentials (MLFLOW_TRACKING_TOKEN / USERNAME / PASSWORD) of the workers"
    if "connection" in text or "max retries" in text or "timed out" in text:
        return "start MLflow or fix MLFLOW_TRACKING_URI; the task retries"
    return "retry when MLflow answers again"


def unavailable(err: BaseException, doing: str) -> RegistryUnavailable:
    """The error to raise when the registry fails: names the store, what failed and the fix."""
    code = getattr(err, "error_code", type(err).__name__)
    return RegistryUnavailable(
        f"MLflow registry at {_where()} failed while {doing} ({code}: {str(err)[:300]}); "
        f"failing closed, nothing is registered or deployed: {_hint(err)}"
    )


def alias_version(name: str, alias: str) -> str | None:
    """Version an alias points to; None when the model or the alias does not exist.

    Any other registry error raises :class:`RegistryUnavailable` (fail closed).
    """
    try:
        model = client().get_registered_model(name)
    except Exception as err:
        if is_missing(err):
            return None
        raise unavailable(err, f"reading alias {alias!r} of model {name!r}") from err
    version = model.aliases.get(alias)
    return None if version is None else str(version)


def _versions_for(name: str, run_key: str) -> list[Any]:
    key = run_key.replace("'", "\\'")
    try:
        return list(client().search_model_versions(f"name = '{name}' and tags.`{RUN_KEY_TAG}` = '{key}'"))
    except Exception as err:
        if is_missing(err):
            return []
        raise unavailable(err, f"looking up the versions of {name!r} for {run_key}") from err


def _trained_by(mv: Any, run_id: str | None) -> bool:
    return run_id is None or mv.run_id == run_id or mv.tags.get(RUN_ID_TAG) == run_id


def find_version(name: str, run_key: str, run_id: str | None = None) -> str | None:
    """The version registered for an Airflow run (``dag_id/run_id``) *from this trained run*, if any.

    With ``run_id`` a version of the same Airflow run that another training try produced (a task
    cleared and re-run) does not count. A lookup error raises (a duplicate registration would follow).
    """
    found = [v for v in _versions_for(name, run_key) if _trained_by(v, run_id)]
    return str(max(int(v.version) for v in found)) if found else None


def _ensure_model(c: MlflowClient, name: str) -> None:
    try:
        c.create_registered_model(name, tags={"mlops.pipeline": name})
    except Exception as err:
        if getattr(err, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
            raise unavailable(err, f"creating registered model {name!r}") from err


def register(name: str, model_uri: str, run_id: str, run_key: str, tags: dict[str, str]) -> tuple[str, bool]:
    """Register ``model_uri`` (trained by MLflow run ``run_id``) once; returns (version, created).

    A retried task finds the version it made before through the run key *and* the trained run id.
    When the Airflow run already registered a model from another training try (``train`` cleared
    and re-run), that version is marked ``mlops.superseded_by`` and a new one is registered: the
    decision and the deploy always name the model this try trained.
    """
    import mlflow

    earlier = _versions_for(name, run_key)
    mine = [v for v in earlier if _trained_by(v, run_id)]
    c = client()
    if mine:
        version, created = str(max(int(v.version) for v in mine)), False
        log.info(
            "model %s already has version %s for %s (run %s); reusing it", name, version, run_key, run_id
        )
        # this try's tags on it (a new version gets them in its create call: on a tracking server
        # each tag set alone costs a round trip or two)
        set_tags(name, version, tags)
    else:
        _ensure_model(c, name)
        identity = {RUN_KEY_TAG: run_key, RUN_ID_TAG: run_id, MODEL_URI_TAG: model_uri}
        if model_uri.startswith("models:/m-"):
            identity[MODEL_ID_TAG] = model_uri.removeprefix("models:/").split("/")[0]
        # mlflow.register_model resolves an MLflow 3 logged model (models:/m-...) to its model_id,
        # which a tracking server requires; the client call alone only works on a local store.
        mv = mlflow.register_model(model_uri, name, tags={**identity, **tags})
        version, created = str(mv.version), True
        for old in earlier:
            log.warning(
                "v%s of %s came from an earlier training try of %s (run %s); superseded by v%s",
                old.version, name, run_key, old.run_id, version,
            )  # fmt: skip
            c.set_model_version_tag(name, str(old.version), SUPERSEDED_TAG, version)
    c.set_registered_model_alias(name, CHALLENGER, version)
    return version, created


def set_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, str(value))


def ruling(name: str, version: str) -> Ruling:
    """The gate decision recorded on ``name`` v``version`` (raises when the registry cannot answer)."""
    try:
        mv = client().get_model_version(name, version)
    except Exception as err:
        if is_missing(err):
            raise DecisionRefused(f"model {name!r} has no version {version}", None) from err
        raise unavailable(err, f"reading the gate decision of {name!r} v{version}") from err
    tags = dict(mv.tags)
    against = tags.get(AGAINST_TAG)
    return Ruling(
        version=str(version),
        outcome=tags.get(GATE_TAG),
        evaluated_against=None if against in (None, "", NO_CHAMPION) else against,
        reasons=[r for r in tags.get(REASONS_TAG, "").split(" | ") if r],
        tags=tags,
        run_id=getattr(mv, "run_id", None),
    )


def check_deployable(name: str, version: str) -> Ruling:
    """The registry's decision for this exact version, or :class:`DecisionRefused`."""
    found = ruling(name, version)
    if found.outcome not in DEPLOYABLE:
        what = f"the gate decision is {found.outcome!r}" if found.outcome else "no gate decision is recorded"
        raise DecisionRefused(
            f"refusing to deploy {name} v{version}: {what} on the registry "
            f"(tag {GATE_TAG}; reasons: {'; '.join(found.reasons) or 'none'}); "
            "only versions the gate promoted (or a recorded force_promote) are deployed",
            found.outcome,
        )
    if AGAINST_TAG not in found.tags:
        raise DecisionRefused(
            f"refusing to deploy {name} v{version}: tag {AGAINST_TAG} is missing, so the champion it "
            "was evaluated against is unknown; register it through the pipeline's gate",
            found.outcome,
        )
    fields = release.release_fields(name, str(version), found.run_id or "", found.tags)
    if not release.verify(found.tags.get(release.RELEASE_SEAL_TAG), "release", **fields):
        raise DecisionRefused(
            f"refusing to deploy {name} v{version}: its gate decision ({found.outcome!r}) is not sealed "
            f"by the release steps for this version, run and artifact (tag {release.RELEASE_SEAL_TAG} "
            "missing or not matching): a tag was written or changed outside the pipeline's register "
            "step. Re-run the training DAG",
            "forged",
        )
    return found


def seal_release(name: str, version: str, run_id: str, tags: dict[str, str]) -> None:
    """Seal the version's decision and digest (:mod:`mlops_core.runs.release`); only the register step does."""
    signature = release.seal("release", **release.release_fields(name, str(version), run_id, tags))
    try:
        client().set_model_version_tag(name, str(version), release.RELEASE_SEAL_TAG, signature)
    except Exception as err:
        raise unavailable(err, f"sealing the decision of {name!r} v{version}") from err


@contextmanager
def champion_guard(name: str, expected: str | None) -> Iterator[None]:
    """Within this block, :func:`promote` of ``name`` is a compare-and-swap against ``expected``.

    Deployment targets call :func:`promote` themselves (at deploy for ``local``, after the traffic
    shift for endpoints); the guard gives every one of them the check without changing their API.
    """
    token = _EXPECTED.set({**_EXPECTED.get(), name: expected})
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def _set_or_delete(c: MlflowClient, name: str, alias: str, version: str | None) -> None:
    if version is None:
        c.delete_registered_model_alias(name, alias)
    else:
        c.set_registered_model_alias(name, alias, version)


LOCK_TTL_SECONDS = 300.0


def _lock_name(name: str) -> str:
    return f"{name}.mlops-deploy-lock"


@contextmanager
def deploy_lock(
    name: str, holder: str, *, ttl: float = LOCK_TTL_SECONDS, wait: float = 30.0
) -> Iterator[None]:
    """One promotion of ``name`` at a time, across processes and machines.

    MLflow has no conditional alias update, but creating a registered model is atomic (its name
    is unique in the store): the lock is a registered model ``<name>.mlops-deploy-lock`` whose
    tag says who holds it until when. A holder killed with ``kill -9`` leaves it behind; after
    ``ttl`` seconds the next deploy breaks it. Waits up to ``wait`` seconds for a live holder,
    then raises :class:`ChampionMoved` (another deploy is moving the champion right now).
    """
    c = client()
    lock = _lock_name(name)
    deadline = time.monotonic() + wait
    while True:
        try:
            c.create_registered_model(lock, tags={"holder": holder, "expires_at": f"{time.time() + ttl:.0f}"})
            break
        except Exception as err:
            if getattr(err, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise unavailable(err, f"taking the deploy lock of {name}") from err
        _break_if_stale(c, lock)
        if time.monotonic() > deadline:
            raise ChampionMoved(
                f"another deploy of {name} holds {lock} (for at most {ttl:.0f} s); nothing was changed, "
                "retry the task"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        try:
            c.delete_registered_model(lock)
        except Exception:
            log.exception("could not release %s; it expires by itself in %.0f s", lock, ttl)


def _break_if_stale(c: MlflowClient, lock: str) -> None:
    try:
        tags = c.get_registered_model(lock).tags
    except Exception:
        return  # released meanwhile
    if float(tags.get("expires_at") or 0) < time.time():
        log.warning("breaking the stale deploy lock %s held by %s", lock, tags.get("holder"))
        try:
            c.delete_registered_model(lock)
        except Exception:
            pass  # someone else broke it first


def promote(name: str, version: str, *, expected: Any = _UNCHECKED) -> str | None:
    """Point ``champion`` at ``version`` and ``previous_champion`` at the old champion; return the old one.

    Idempotent: when ``champion`` already points at ``version`` nothing moves (a retried deploy
    must not make the new version its own previous champion).

    With ``expected`` (or inside :func:`champion_guard`) it is a compare-and-swap under
    :func:`deploy_lock`: read the alias, refuse with :class:`ChampionMoved` unless it is
    ``expected``, set it, read it again. The lock makes read-compare-write one step for every
    deploy that goes through this package; what remains is a writer that bypasses the package
    (someone moving the alias by hand), and a holder stalled longer than the lock's TTL.
    """
    if expected is _UNCHECKED:
        expected = _EXPECTED.get().get(name, _UNCHECKED)
    if expected is _UNCHECKED:
        return _promote(name, version, _UNCHECKED)
    import os
    import socket

    with deploy_lock(name, f"{socket.gethostname()}:{os.getpid()} v{version}"):
        return _promote(name, version, expected)


def _promote(name: str, version: str, expected: Any) -> str | None:
    c = client()
    current = alias_version(name, CHAMPION)
    if current == version:
        return alias_version(name, PREVIOUS)
    if expected is not _UNCHECKED and current != expected:
        raise ChampionMoved(
            f"champion of {name} is {_v(current)}, not {_v(expected)} that v{version} was evaluated "
            "against: another deploy got there first. Nothing was changed; re-run the training DAG "
            "to evaluate against the new champion"
        )
    before = alias_version(name, PREVIOUS)
    try:
        if current is not None:
            c.set_registered_model_alias(name, PREVIOUS, current)
        c.set_registered_model_alias(name, CHAMPION, version)
    except Exception as err:
        _undo_promote(c, name, version, current, before)
        if isinstance(err, RegistryUnavailable):
            raise
        raise unavailable(err, f"moving champion of {name} to v{version} (aliases restored)") from err
    now = alias_version(name, CHAMPION)
    if now != version:
        raise ChampionMoved(
            f"another writer moved champion of {name} to {_v(now)} while v{version} was being "
            "promoted; it won and this deploy changed nothing. Re-run the training DAG to "
            "evaluate against the new champion"
        )
    return current


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "no champion"


def _undo_promote(c: MlflowClient, name: str, version: str, current: str | None, before: str | None) -> None:
    """Best effort after a failed promotion: both aliases back to what they were."""
    try:
        if alias_version(name, CHAMPION) == version:
            _set_or_delete(c, name, CHAMPION, current)
        if alias_version(name, PREVIOUS) != before:
            _set_or_delete(c, name, PREVIOUS, before)
    except Exception:
        log.exception(
            "could not restore the aliases of %s after a failed promotion of v%s: champion should be %s, "
            "previous_champion %s; set them by hand",
            name, version, _v(current), _v(before),
        )  # fmt: skip


def restore(name: str, failed_version: str, previous: str | None) -> None:
    """Undo :func:`promote`: champion back to ``previous`` (or no champion on a first deploy).

    Only when ``champion`` still points at ``failed_version``: if another deploy has moved it
    since, that deploy's champion stays.
    """
    import os
    import socket

    c = client()
    with deploy_lock(name, f"{socket.gethostname()}:{os.getpid()} rollback v{failed_version}"):
        current = alias_version(name, CHAMPION)
        if current == failed_version:
            _set_or_delete(c, name, CHAMPION, previous)
    if current != failed_version and current != previous:
        log.warning(
            "champion of %s is %s (not the failed v%s): leaving it", name, _v(current), failed_version
        )
    c.set_model_version_tag(name, failed_version, "mlops.rolled_back", "true")


def set_live_challenger(name: str, version: str | None, expected: str | None) -> None:
    """Point ``live_challenger`` at ``version`` (None: remove it) if it still points at ``expected``."""
    set_alias_checked(name, LIVE_CHALLENGER, version, expected)


def set_alias_checked(name: str, alias: str, version: str | None, expected: str | None) -> None:
    """Point ``alias`` (``live_challenger``, ``shadow``) at ``version`` (None: remove it) if it still
    points at ``expected``; else :class:`ChampionMoved` and nothing changes.

    Under :func:`deploy_lock`, so a verdict and a new deploy never both act on the alias.
    """
    import os
    import socket

    c = client()
    with deploy_lock(name, f"{socket.gethostname()}:{os.getpid()} {alias} v{version}"):
        current = alias_version(name, alias)
        if current != expected:
            raise ChampionMoved(
                f"{alias} of {name} is {_v(current)}, not {_v(expected)}: another step moved it; "
                "nothing was changed"
            )
        if current != version:
            _set_or_delete(c, name, alias, version)
