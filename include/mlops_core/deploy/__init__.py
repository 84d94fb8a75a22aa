"""Deployment targets behind one interface: deploy, wait, smoke test, promote, roll back.

``local`` (:mod:`mlops_core.deploy.local`) moves the MLflow alias ``champion``. Endpoint targets
(:mod:`~mlops_core.clouds.aws.deploy`, :mod:`~mlops_core.clouds.gcp.deploy`,
:mod:`~mlops_core.clouds.azure.deploy`, :mod:`~mlops_core.clouds.kubernetes.deploy`) put a new version behind a
managed endpoint (KServe: an InferenceService on the team's own Kubernetes cluster):

1. ``deploy`` starts it (create-or-update, idempotent: a retry finds what the first try made)
   and returns a :class:`Deployment` in state ``updating``;
2. the caller polls ``status`` (the Airflow layer does it in a trigger, deferred);
3. ``smoke_test`` scores held-out rows through the endpoint;
4. ``promote`` moves all traffic to the new version and the ``champion`` alias to it, or
   ``rollback`` sends the traffic back, removes the new version and restores the alias.

Targets take their SDK clients from a :data:`~mlops_core.spec.profiles.ClientFactory`, so this package
never reads a credential and contract tests can record every request.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

log = logging.getLogger(__name__)

UPDATING, READY = "updating", "ready"


@dataclass
class Deployment:
    """What a deploy did: enough to wait for it, smoke-test it, promote it and undo it."""

    target: str
    model_name: str
    version: str
    previous_version: str | None
    endpoint: str
    strategy: str = "all_at_once"
    state: str = READY
    extra: dict[str, Any] = field(default_factory=dict)  # target-specific ids (configs, deployed model ids)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SmokeResult:
    passed: bool
    rows: int
    mismatches: int
    max_abs_diff: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SmokeTestFailed(Exception):
    """The deployed model disagrees with the offline predictions; traffic was rolled back."""

    def __init__(self, result: SmokeResult, deployment: Deployment):
        self.result, self.deployment = result, deployment
        prev = (
            f"v{deployment.previous_version}" if deployment.previous_version else "no champion (first deploy)"
        )
        super().__init__(
            f"smoke test of {deployment.model_name} v{deployment.version} failed: {result.detail}; rolled back to {prev}"
        )


class DeploymentFailed(RuntimeError):
    """The platform reports the deployment failed (the message carries its reason)."""


class DeploymentTarget(Protocol):
    name: str

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment: ...

    def status(self, deployment: Deployment) -> str: ...

    def smoke_test(
        self, spec: PipelineSpec, deployment: Deployment, holdout_uri: str, expected_uri: str
    ) -> SmokeResult: ...

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment: ...

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None: ...


def compare(spec: PipelineSpec, got: np.ndarray, want: np.ndarray, rows: int) -> SmokeResult:
    """Served predictions vs the offline ones: exact for classes, within ``tolerance`` for numbers."""
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape[0] != want.shape[0]:
        return SmokeResult(
            False, rows, rows, float("nan"), f"served {got.shape[0]} predictions for {rows} rows"
        )
    if spec.problem_type == "regression":
        diff = np.abs(got.astype(float) - want.astype(float))
        bad = int((diff > spec.deployment.tolerance).sum())
        max_diff = float(diff.max()) if len(diff) else 0.0
    else:
        bad = int((got.astype(str) != want.astype(str)).sum())
        max_diff = float(bad)
    detail = f"{bad}/{rows} rows differ from offline predictions (tolerance {spec.deployment.tolerance:g})"
    return SmokeResult(bad == 0, rows, bad, max_diff, detail)


def smoke_frames(spec: PipelineSpec, holdout_uri: str, expected_uri: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The first ``smoke_rows`` held-out feature rows and the offline predictions for them."""
    from mlops_core.data import storage

    hold = storage.read_frame(holdout_uri).head(spec.deployment.smoke_rows)
    expected = storage.read_frame(expected_uri, name="predictions").head(len(hold))
    return hold.drop(columns=[spec.target]), expected["prediction"].to_numpy()


SHADOW_TAG = "mlops.shadow"  # live | promoted | rejected | replaced | rolled_back (deployment.shadow)
SHADOW_VERDICT_TAG = "mlops.shadow_verdict"  # the verdict in one line (the Models view, the model card)


def put_in_shadow(spec: PipelineSpec, version: str, champion: str, target: str) -> Deployment:
    """``deployment.shadow``: the alias ``shadow`` -> ``version``, scored beside the champion on every
    row; the champion keeps serving. A shadow already in place is replaced (``mlops.shadow=replaced``)."""
    from mlops_core.runs import registry

    name = spec.registered_model_name
    old = registry.alias_version(name, registry.SHADOW)
    registry.set_alias_checked(name, registry.SHADOW, version, old)
    if old not in (None, version):
        registry.set_tags(
            name,
            old,
            {SHADOW_TAG: "replaced", SHADOW_VERDICT_TAG: f"replaced by v{version} before a verdict"},
        )
    registry.set_tags(
        name, version, {SHADOW_TAG: "live", SHADOW_VERDICT_TAG: f"in shadow beside champion v{champion}"}
    )
    log.info("v%s of %s is the shadow beside champion v%s (scored on every row)", version, name, champion)
    return Deployment(
        target, name, version, champion, f"models:/{name}@{registry.SHADOW}", extra={"shadow": True}
    )


def take_out_of_shadow(spec: PipelineSpec, deployment: Deployment) -> None:
    """A shadow's smoke test or deploy failed: the alias goes (the champion never moved)."""
    from mlops_core.runs import registry

    name = deployment.model_name
    if registry.alias_version(name, registry.SHADOW) == deployment.version:
        registry.set_alias_checked(name, registry.SHADOW, None, deployment.version)
    registry.set_tags(name, deployment.version, {SHADOW_TAG: "rolled_back", "mlops.rolled_back": "true"})
    log.warning("shadow v%s of %s taken out", deployment.version, spec.name)


def offline_smoke_test(
    spec: PipelineSpec, deployment: Deployment, holdout_uri: str, expected_uri: str
) -> SmokeResult:
    """The version behind a registry alias (``champion``, ``live_challenger``, ``shadow``): loaded
    verified, as batch scoring loads it, its predictions compared with the offline ones; and the alias
    must point at it."""
    import numpy as np

    from mlops_core.runs import registry, run_artifacts, tracking

    tracking.configure()
    features, want = smoke_frames(spec, holdout_uri, expected_uri)
    # what the alias serves, loaded only after its files matched the registered digest
    served = run_artifacts.load_verified(
        deployment.model_name, deployment.version, allow_pickle=spec.model.allow_pickle
    )
    got = np.asarray(served.predict(features))
    alias = registry.CHAMPION
    if deployment.extra.get("challenger"):
        alias = registry.LIVE_CHALLENGER
    elif deployment.extra.get("shadow"):
        alias = registry.SHADOW
    served_version = registry.alias_version(deployment.model_name, alias)
    if served_version != deployment.version:
        return SmokeResult(
            False,
            len(features),
            len(features),
            float("nan"),
            f"alias {alias} points at v{served_version}, not v{deployment.version}",
        )
    return compare(spec, got, want, len(features))


class EndpointTarget:
    """Shared by the endpoint targets: the smoke test through :meth:`predict`, names, settings."""

    name = "endpoint"

    def __init__(self, profile: CloudProfile, clients: ClientFactory):
        self.profile, self.clients = profile, clients

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        raise NotImplementedError

    def status(self, deployment: Deployment) -> str:
        raise NotImplementedError

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        raise NotImplementedError

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        raise NotImplementedError

    def predict(self, deployment: Deployment, features: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def smoke_test(
        self, spec: PipelineSpec, deployment: Deployment, holdout_uri: str, expected_uri: str
    ) -> SmokeResult:
        if deployment.extra.get("shadow"):  # the endpoint cannot route a request to the shadow alone
            return offline_smoke_test(spec, deployment, holdout_uri, expected_uri)
        features, want = smoke_frames(spec, holdout_uri, expected_uri)
        return compare(spec, self.predict(deployment, features), want, len(features))

    # -- deployment.shadow (mlops_core.shadow); SageMaker overrides these to mirror live traffic,
    # Azure ML with deployment.shadow.mirror_percent

    mirrors_traffic = False  # True: the platform sends the shadow a copy of every request

    def mirrors(self, spec: PipelineSpec) -> bool:
        """The shadow of ``spec`` is judged on mirrored requests (:meth:`shadow_traffic`), not batch rows."""
        return self.mirrors_traffic

    def deploy_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        """Put ``version`` in shadow beside ``champion``. Here (Vertex AI, Azure ML, KServe: no mirroring
        driven) the endpoint stays on the champion and only the alias ``shadow`` moves: batch and
        monitoring scoring score every row with both models in process, from the registry."""
        return put_in_shadow(spec, version, champion, self.name)

    def rollback_shadow(self, spec: PipelineSpec, deployment: Deployment) -> None:
        """Take a shadow out before any verdict (its smoke test or its deploy failed): the alias goes."""
        take_out_of_shadow(spec, deployment)

    def shadow_traffic(
        self, spec: PipelineSpec, ds: str
    ) -> list[tuple[list[dict[str, Any]], list[Any], list[Any]]]:
        """The day's mirrored requests, each as (its rows, the champion's predictions, the shadow's):
        mirroring targets only (none here)."""
        return []

    def promote_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        """The verdict promoted ``version``: deploy it through the target's normal path (the spec's
        strategy); :func:`mlops_core.shadow.complete_promotion` smoke-tests it and moves ``champion``."""
        return self.deploy(spec, version)

    def reject_shadow(self, spec: PipelineSpec, version: str, champion: str) -> None:
        """The verdict rejected ``version``: remove what it holds on the platform (nothing here)."""

    @staticmethod
    def endpoint_name(spec: PipelineSpec) -> str:
        """One endpoint per pipeline, named after it (``breast_cancer`` -> ``mlops-breast-cancer``).

        At most 63 characters (SageMaker's limit); a long name keeps a hash of the full one.
        """
        name = "mlops-" + spec.name.replace("_", "-")
        if len(name) <= 63:
            return name
        import hashlib

        return name[:54] + "-" + hashlib.sha256(spec.name.encode()).hexdigest()[:8]


def package_model(spec: PipelineSpec, version: str, root: str) -> str:
    """Copy MLflow model version ``version`` as ``<root>/<name>/models/v<version>/model.tar.gz``.

    The tarball holds the MLflow model directory (``MLmodel`` at its top), the layout SageMaker's
    MLflow serving image expects; Vertex AI and Azure ML read the unpacked folder beside it
    (``.../v<version>/model/``). Idempotent: an existing copy with the same content is kept.
    """
    import io
    import tarfile
    import tempfile
    from pathlib import Path

    import mlflow

    from mlops_core.data import filesystems
    from mlops_core.runs import tracking

    tracking.configure()
    dest = filesystems.join(root, spec.name, "models", f"v{version}")
    fs, base = filesystems.filesystem(dest)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{spec.registered_model_name}/{version}", dst_path=tmp
            )
        )
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(local.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(local)), recursive=False)
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            fs.pipe(f"{base}/model/{path.relative_to(local).as_posix()}", path.read_bytes())
        fs.pipe(f"{base}/model.tar.gz", buf.getvalue())
    return f"{dest}/model.tar.gz"
