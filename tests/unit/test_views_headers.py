"""Every response of the ``/mlops`` app carries a Content-Security-Policy with frame-ancestors and
``X-Content-Type-Options: nosniff``: pages, reports and errors alike (issue 23, item 8)."""

from __future__ import annotations

import contextlib

import pytest

from mlops_airflow.views import models as views
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


class _User:
    def get_name(self) -> str:
        return "alice"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from mlops_airflow.hooks import cloud
    from mlops_core.data import storage

    spec = example_spec()
    monkeypatch.setattr(views, "load_pipelines", lambda: [spec])
    monkeypatch.setattr(views, "_allowed", lambda user, spec: True)
    monkeypatch.setattr(views, "render_pipeline", lambda spec, *a: f"<section>{spec.name}</section>")
    monkeypatch.setattr(views, "champion_history", lambda spec: {})
    monkeypatch.setattr(views, "day_history", lambda spec: {})
    monkeypatch.setattr(cloud, "cloud_context", lambda spec: contextlib.nullcontext())
    monkeypatch.setattr(storage, "read_file", lambda uri: b"<script>alert(1)</script>")
    app = views.create_app()
    app.dependency_overrides[get_user] = _User
    with TestClient(app) as test_client:
        yield test_client, spec, app


def _assert_headers(response) -> str:
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'self'" in csp, (response.status_code, csp)
    assert response.headers.get("x-content-type-options") == "nosniff"
    return csp


def test_the_models_page_allows_no_script_and_no_foreign_frame(client):
    test_client, spec, _ = client
    response = test_client.get("/models")
    assert response.status_code == 200 and spec.name in response.text
    csp = _assert_headers(response)
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_a_report_keeps_its_sandbox_and_gets_frame_ancestors(client):
    test_client, spec, _ = client
    response = test_client.get(
        f"/reports/{spec.name}", params={"path": "validation/ds=2026-01-31/result.html"}
    )
    assert response.status_code == 200
    csp = _assert_headers(response)
    assert csp.startswith("sandbox allow-scripts")


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/reports/nope?path=a/result.html", 404),
        ("/reports/{name}?path=../../etc/passwd", 400),
        ("/reports/{name}?path=a/secret.txt", 400),
        ("/not-a-route", 404),
    ],
)
def test_error_responses_carry_the_headers_too(client, url, status):
    test_client, spec, _ = client
    response = test_client.get(url.format(name=spec.name))
    assert response.status_code == status
    _assert_headers(response)


def test_a_refused_sign_in_carries_the_headers_too(client):
    test_client, _, app = client
    app.dependency_overrides.clear()  # Airflow's own get_user: no token here
    response = test_client.get("/models")
    assert response.status_code in (401, 403)
    _assert_headers(response)
