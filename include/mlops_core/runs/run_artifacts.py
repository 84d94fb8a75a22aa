"""What a training run recorded about its model, and loading that model only when it matches.

Training logs the model's artifact digest and logged-model id as params of its run
(:func:`record_trained`; params cannot change once logged). Every later load (:func:`load_trained`,
:func:`load_verified`, :func:`champion_artifact`) and every deploy (:func:`verify_artifact`)
downloads the files, checks them against that record and the types the package allows, and refuses
(:class:`ArtifactRefused`) a model that does not match or would load through pickle without opt-in.
:func:`run_contract` reads the data contract a training run logged.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_core.runs import registry, tracking

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)


def _digest_dir(root: Any) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "registered_model_meta"):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def artifact_digest(model_uri: str) -> str:
    """sha256 over the model's artifact files (relative path and content of each, in order).

    ``registered_model_meta`` is left out: MLflow writes it into a download of ``models:/<name>/<v>``
    (it names the version), so it differs from the logged model's copy by construction.
    """
    import tempfile
    from pathlib import Path

    import mlflow

    tracking.configure()
    with tempfile.TemporaryDirectory() as tmp:
        return _digest_dir(Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp)))


class ArtifactRefused(RuntimeError):
    """A model that must not be loaded: its files or its origin do not match what its training run
    recorded, it holds types the package does not allow, or it would load through pickle without opt-in."""


# Recorded by training on the MLflow *run* (params cannot be changed once logged; registry tags can).
DIGEST_PARAM = "mlops.model_sha256"
MODEL_ID_PARAM = "mlops.model_id"
FAMILY_PARAM = "family"


def model_id_of(model_uri: str) -> str | None:
    """``models:/m-...`` (a logged model, what training returns) -> ``m-...``; None for other URIs."""
    if model_uri.startswith("models:/m-"):
        rest = model_uri.removeprefix("models:/")
        return rest if "/" not in rest and "@" not in rest else None
    return None


def record_trained(model_uri: str) -> str:
    """Training: log the model's digest, id and family's trust on the active run; return the digest.

    Every later load compares the files with this digest and the model's id with this id.
    """
    import mlflow

    model_id = model_id_of(model_uri)
    if model_id is None:
        raise ArtifactRefused(f"training logged {model_uri!r}, not a logged model (models:/m-...)")
    digest = artifact_digest(model_uri)
    mlflow.log_params({DIGEST_PARAM: digest, MODEL_ID_PARAM: model_id})
    return digest


@dataclass(frozen=True)
class Recorded:
    """What a training run recorded about the model it trained (its params, immutable)."""

    run_id: str
    model_id: str
    digest: str
    family: str


def recorded(run_id: str, label: str) -> Recorded:
    """The model identity training recorded on run ``run_id``; :class:`ArtifactRefused` when absent."""
    import re

    if not re.fullmatch(r"[0-9a-f]{32}", str(run_id)):
        raise ArtifactRefused(f"{label}: {str(run_id)[:80]!r} is not an MLflow run id")
    try:
        params = dict(registry.client().get_run(run_id).data.params)
    except Exception as err:
        if registry.is_missing(err):
            raise ArtifactRefused(f"{label}: its training run {run_id!r} does not exist") from err
        raise registry.unavailable(err, f"reading what run {run_id} recorded about its model") from err
    missing = [k for k in (DIGEST_PARAM, MODEL_ID_PARAM, FAMILY_PARAM) if not params.get(k)]
    if missing:
        raise ArtifactRefused(
            f"{label}: its training run {run_id} recorded no {', '.join(missing)} (trained before "
            "models were recorded, or not by this package's training), so its files cannot be "
            "verified; refusing to load it. Re-run the training DAG to train a verifiable model"
        )
    return Recorded(run_id, params[MODEL_ID_PARAM], params[DIGEST_PARAM], params[FAMILY_PARAM])


def _flavor(root: Any) -> dict[str, Any]:
    import yaml

    meta = yaml.safe_load((root / "MLmodel").read_text()) or {}
    found = (meta.get("flavors") or {}).get("sklearn")
    return found if isinstance(found, dict) else {}


def serialization_format(root: Any) -> str:
    """The sklearn flavor's serialization format written in a downloaded model's ``MLmodel``."""
    return str(_flavor(root).get("serialization_format") or "unknown")


def _model_file(root: Any, flavor: dict[str, Any], label: str) -> Any:
    name = str(flavor.get("pickled_model") or "")
    path = root / name
    if not name or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        raise ArtifactRefused(f"{label}: its MLmodel names no model file in the model folder ({name!r})")
    return path


def _trusted_for(family: str, label: str) -> frozenset[str]:
    from mlops_core.spec import estimators

    try:
        return estimators.trusted_types(family)
    except ValueError as err:  # a framework family this process has not registered
        raise ArtifactRefused(f"{label}: {err}; register the family in this process to load it") from err


def _check_declared(flavor: dict[str, Any], allowed: frozenset[str], family: str, label: str) -> None:
    declared = flavor.get("skops_trusted_types") or []
    extra = sorted({str(t) for t in declared} - allowed) if isinstance(declared, list) else [repr(declared)]
    if extra:
        raise ArtifactRefused(
            f"{label}: its MLmodel asks skops to trust {extra}, which a {family!r} model never holds; "
            "the package decides which types a model may contain, not the artifact. Refusing to load it"
        )


def _load_skops(path: Any, allowed: frozenset[str], label: str) -> Any:
    import warnings

    with warnings.catch_warnings():  # see training._serialization: the import probes every module
        warnings.simplefilter("ignore")
        import skops.io as sio
        from skops.io.exceptions import UntrustedTypesFoundException

        try:
            return sio.load(path, trusted=sorted(allowed))
        except UntrustedTypesFoundException as err:
            raise ArtifactRefused(
                f"{label}: its model file holds types the package does not allow ({err}); refusing to load it"
            ) from err


def _load_root(root: Any, rec: Recorded, label: str, *, allow_pickle: bool) -> Any:
    """Load a verified copy: skops with the package's trusted types, cloudpickle only on opt-in."""
    flavor = _flavor(root)
    fmt = str(flavor.get("serialization_format") or "unknown")
    if fmt == "skops":
        allowed = _trusted_for(rec.family, label)
        _check_declared(flavor, allowed, rec.family, label)
        return _load_skops(_model_file(root, flavor, label), allowed, label)
    if fmt == "cloudpickle" and allow_pickle:
        import cloudpickle

        log.warning("%s: loading with cloudpickle (model.allow_pickle: true); unpickling runs code", label)
        with _model_file(root, flavor, label).open("rb") as f:
            return cloudpickle.load(f)
    raise ArtifactRefused(
        f"{label} is saved with {fmt!r}, which runs code when loaded; only skops models load "
        "unless the pipeline sets model.allow_pickle: true (see README 'Security catalogue')"
    )


@contextmanager
def _verified_copy(download_uri: str, model_id: str | None, run_id: str, label: str) -> Iterator[Any]:
    """Download once and check that copy: the model is the one run ``run_id`` recorded (its id),
    its files hash to the digest that run recorded, and what its MLmodel declares is allowed.
    Yields the folder and the record; nothing can change between the checks and the load."""
    import tempfile
    from pathlib import Path

    import mlflow

    tracking.configure()
    rec = recorded(run_id, label)
    if model_id != rec.model_id:
        raise ArtifactRefused(
            f"{label}: model {model_id or download_uri!r} is not the model its training run {run_id} "
            f"recorded ({rec.model_id}); refusing to load a model from another run"
        )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(mlflow.artifacts.download_artifacts(download_uri, dst_path=tmp))
        if (got := _digest_dir(root)) != rec.digest:
            raise ArtifactRefused(
                f"{label}: its artifact files changed since training (sha256 {got[:12]} != "
                f"{rec.digest[:12]} recorded on run {run_id}); refusing to load it. Restore the "
                "artifacts or re-run training"
            )
        flavor = _flavor(root)
        if flavor.get("serialization_format") == "skops":
            _check_declared(flavor, _trusted_for(rec.family, label), rec.family, label)
        yield root, rec


def load_model(
    download_uri: str, model_id: str | None, run_id: str, label: str, *, allow_pickle: bool
) -> Any:
    """The one verified load every path uses (challenger, champion, smoke test, batch scoring,
    a remote job's result): :func:`_verified_copy`, then skops with the package's trusted types."""
    with _verified_copy(download_uri, model_id, run_id, label) as (root, rec):
        return _load_root(root, rec, label, allow_pickle=allow_pickle)


def load_trained(model_uri: str, run_id: str, *, allow_pickle: bool = False) -> Any:
    """Load a just-trained model (``trained.model_uri`` and ``run_id``, from XCom or a remote job's
    ``result.json``): only the model that run recorded, verified like a registered one."""
    return load_model(model_uri, model_id_of(model_uri), run_id, model_uri, allow_pickle=allow_pickle)


def _version_origin(name: str, version: str) -> tuple[str, str | None]:
    """(run_id, model_id) of a version, as MLflow set them when it was created (not its tags)."""
    try:
        mv = registry.client().get_model_version(name, version)
    except Exception as err:
        raise registry.unavailable(err, f"reading the origin of {name!r} v{version}") from err
    if not mv.run_id:
        raise ArtifactRefused(f"{name} v{version} has no training run, so its files cannot be verified")
    model_id = getattr(mv, "model_id", None) or model_id_of(str(mv.source or ""))
    return str(mv.run_id), model_id


def load_verified(name: str, version: str, *, allow_pickle: bool = False) -> Any:
    """Load ``name`` v``version`` only if it is the model its training run recorded, byte for byte."""
    run_id, model_id = _version_origin(name, version)
    return load_model(
        f"models:/{name}/{version}", model_id, run_id, f"{name} v{version}", allow_pickle=allow_pickle
    )


def verify_trained(model_uri: str, run_id: str) -> str:
    """The checks of :func:`load_trained` without loading; returns the recorded digest (register)."""
    with _verified_copy(model_uri, model_id_of(model_uri), run_id, model_uri) as (_, rec):
        return rec.digest


def champion_artifact(name: str, path: str) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """A JSON artifact of the champion's training run: (content, version, run_id).

    ``(None, None, None)`` without a champion; ``(None, version, run_id)`` when that run has no
    such artifact (trained before it was recorded). Registry or artifact-store errors raise
    :class:`RegistryUnavailable`: a missing answer is never mistaken for a missing artifact.
    """
    import mlflow

    version = registry.alias_version(name, registry.CHAMPION)
    if version is None:
        return None, None, None
    try:
        run_id = registry.client().get_model_version(name, version).run_id
        listed = {a.path for a in registry.client().list_artifacts(run_id)} if run_id else set()
        content = mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}") if path in listed else None
    except Exception as err:
        raise registry.unavailable(err, f"reading {path} of {name} v{version}") from err
    return content, version, run_id


def verify_artifact(name: str, version: str, tags: dict[str, str]) -> None:
    """Deploy: the version's files are the model its training run recorded (digest, id, allowed types).

    An endpoint's serving image loads the model with MLflow, which trusts the ``MLmodel``'s own
    type list: checked here, before the files leave for any target.
    """
    run_id, model_id = _version_origin(name, version)
    try:
        with _verified_copy(f"models:/{name}/{version}", model_id, run_id, f"{name} v{version}"):
            pass
    except ArtifactRefused as err:
        raise registry.DecisionRefused(
            f"refusing to deploy {name} v{version}: {err}", tags.get(registry.GATE_TAG)
        ) from err


def run_contract(run_id: str | None) -> dict[str, Any] | None:
    """A training run's ``contract.json`` (None when it has none); registry errors raise."""
    import mlflow

    if not run_id:
        return None
    try:
        listed = {a.path for a in registry.client().list_artifacts(run_id)}
        if "contract.json" not in listed:
            return None
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/contract.json")
    except Exception as err:
        raise registry.unavailable(err, f"reading contract.json of run {run_id}") from err


def version_contract(spec: PipelineSpec, version: str) -> dict[str, Any] | None:
    """The data contract of the run that trained ``version`` of the pipeline's model."""
    try:
        run_id = registry.client().get_model_version(spec.registered_model_name, version).run_id
    except Exception as err:
        raise registry.unavailable(err, f"reading {spec.registered_model_name} v{version}") from err
    return run_contract(run_id)
