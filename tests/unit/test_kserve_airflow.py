"""The Airflow side of the ``kserve`` target: the Kubernetes client comes from a KubernetesHook connection.

The connection is ``AIRFLOW_CONN_KUBERNETES_KSERVE_TEST`` (type ``kubernetes``, a kubeconfig in its
extra, as the connection form's "Kube config (JSON format)" stores it) pointing at the recording
API server of the contract tests; no cluster runs. The request that arrives there proves the
chain: profile ``settings.kubernetes_conn_id`` -> ``KubernetesHook(conn_id=...).api_client`` ->
``CustomObjectsApi`` -> the kserve target, with the connection's bearer token.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from mlops_core.spec.profiles import CloudProfile
from tests.contract.test_kserve import ITEM, SERVING_V1, FakeKubeAPI, deployment

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit

TOKEN = "kserve-test-token"  # a test value, not a credential


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeAPI]:
    from kubernetes import client

    fake = FakeKubeAPI()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "eks-test", "cluster": {"server": fake.url}}],
        "users": [{"name": "airflow", "user": {"token": TOKEN}}],
        "contexts": [{"name": "eks-test", "context": {"cluster": "eks-test", "user": "airflow"}}],
        "current-context": "eks-test",
    }
    conn = {"conn_type": "kubernetes", "extra": {"kube_config": kubeconfig}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_KSERVE_TEST", json.dumps(conn))
    # the hook loads the kubeconfig into the client's process-wide default configuration
    saved = client.Configuration.get_default_copy()
    yield fake
    client.Configuration.set_default(saved)
    fake.close()


def profile(name: str) -> CloudProfile:
    return CloudProfile(
        name, "gs://lake/lake", "gs://lake/landing", "google_cloud_missing", "vertex", "kserve", "none",
        {"kubernetes_conn_id": "kubernetes_kserve_test", "kserve_namespace": "mlops"},
    )  # fmt: skip


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_clients_for_builds_the_kubernetes_client_from_the_connection(kube: FakeKubeAPI, cloud: str) -> None:
    from kubernetes import client

    from mlops_airflow.hooks.cloud import clients_for
    from mlops_core.deploy import READY
    from mlops_core.targets import get_target

    # the platform clients are built lazily: eagerly, gcp (no google_cloud_missing connection) and
    # azure (no settings.ml_conn_id) would fail here although KServe needs neither
    clients = clients_for(profile(cloud))
    api = clients("kubernetes")
    assert isinstance(api, client.CustomObjectsApi)
    assert clients("kubernetes") is api  # one client per factory

    kube.expect(SERVING_V1)
    state = get_target("kserve", profile(cloud), clients).status(deployment("1", previous=None, canary=None))
    assert state == READY
    assert kube.calls == [("GET", ITEM, None, None)]
    headers = {k.lower(): v for k, v in kube.headers[-1].items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"  # the connection's user, nothing else
    kube.done()


def test_the_local_profile_has_no_clients() -> None:
    from mlops_airflow.hooks.cloud import clients_for

    local = CloudProfile("local", "file:///l", "file:///d", None, "in_worker", "local", "none")
    with pytest.raises(ValueError, match="has no API clients"):
        clients_for(local)
