"""An alert e-mail links only the URLs the package built (Airflow's and MLflow's own), never a
value that merely looks like a URL (issue 23, item 8)."""

from __future__ import annotations

import re

import pytest

from mlops_airflow.notifications import alerts as notifiers
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

AIRFLOW, MLFLOW = "http://airflow.test", "https://mlflow.test"
OWN = [
    f"{AIRFLOW}/dags/breast_cancer_training/runs/r1/tasks/gate?try_number=1",
    f"{MLFLOW}/#/experiments/1/runs/abc",
]
HOSTILE = [
    "https://evil.example/reset-password",
    f"{AIRFLOW}.evil.example/dags",  # a look-alike host
    f"{AIRFLOW}@evil.example/dags",  # userinfo: the real host is evil.example
    "http://airflow.test:8081/dags",  # another port
    "javascript:alert(1)",
    'https://evil.example/"onmouseover="alert(1)',
]


@pytest.fixture(autouse=True)
def bases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", AIRFLOW)
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", MLFLOW)


def _page(facts: dict, where: dict | None = None) -> str:
    return notifiers.render_html(example_spec(), "gate_rejected", "rejected", "body", facts, where or {})


def _hrefs(page: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', page)


def test_the_packages_own_airflow_and_mlflow_urls_are_links() -> None:
    page = _page({"run": OWN[1]}, {"dag": "d", "log_url": OWN[0]})
    assert [h.replace("&amp;", "&") for h in _hrefs(page)] == [OWN[1], OWN[0]]


@pytest.mark.parametrize("value", HOSTILE)
def test_any_other_url_is_escaped_text_never_a_link(value: str) -> None:
    page = _page({"reason": value, "reasons": [value]}, {"dag": "d", "log_url": value})
    assert _hrefs(page) == []
    assert "onmouseover=" not in page.replace("onmouseover=&quot;", "")  # quotes escaped, no attribute
    shown = value.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#x27;")
    assert f"<code>{shown}</code>" in page  # shown, as text


def test_without_an_mlflow_ui_its_urls_are_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert _hrefs(_page({"run": OWN[1]})) == []
