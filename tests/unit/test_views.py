"""The Models view's rendering and the report route's path rule, without a server (the stack tier
serves them through a real api-server); the extra links' URLs."""

from __future__ import annotations

import pytest

from mlops_airflow.links import mlops as links
from mlops_airflow.views import models as views
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


def history(**row: object) -> dict:
    base = {
        "version": "3",
        "created": "2026-02-01 10:00",
        "gate": "promote",
        "reasons": "",
        "forced_by": "",
        "force_reason": "",
        "approval": "",
        "approved_by": "",
        "promoted": True,
        "rolled_back": False,
        "superseded": False,
        "champion": True,
        "metric": 0.97,
    }
    return {"champion": "3", "metric": "roc_auc", "versions": [{**base, **row}]}


def test_every_value_from_the_registry_or_the_lake_is_escaped() -> None:
    spec = example_spec(description="<script>alert(1)</script>")
    evil = "<img src=x onerror=alert(2)>"
    page = views.render_pipeline(
        spec,
        history(reasons=evil, forced_by=evil, force_reason="x", approved_by=evil, approval="approved"),
        {"drift": [{"ds": evil, "drift_share": 0.2}], "realized": []},
    )
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page


def test_charts_show_the_threshold_the_band_and_each_point() -> None:
    svg = views.line_chart(
        [("2026-02-01", 0.8), ("2026-02-02", None), ("2026-02-03", 0.6)],
        title="realized roc_auc",
        threshold=0.7,
        band=[(0.75, 0.85), (None, None), (0.5, 0.7)],
    )
    assert svg.count("<circle") == 2 and 'class="thr"' in svg and 'class="band"' in svg
    assert "2026-02-03: 0.6" in svg
    assert "no data yet" in views.line_chart([("a", None)], title="drift share by day")


def test_the_page_marks_the_champion_and_says_what_decided_each_version() -> None:
    spec = example_spec()
    page = views.render_pipeline(
        spec,
        history(gate="forced", forced_by="ana", force_reason="hotfix", rolled_back=True),
        {"drift": [], "realized": []},
    )
    assert "champion v3" in page and "v3 ★" in page
    assert "forced by ana: hotfix; rolled back" in page


def test_each_version_shows_the_threshold_its_saved_model_applies() -> None:
    spec = example_spec()
    shown = views._threshold_text(spec, "0.1834", {"positive_class": "malignant"})
    assert shown == "0.1834 on P(malignant)"
    assert views._threshold_text(spec, "default", {}).startswith("default (0.5")
    assert views._threshold_text(spec, None, {}) == "not recorded"
    assert views._threshold_text(example_spec("diabetes"), "0.3", {}) == ""  # regression: none
    page = views.render_pipeline(spec, history(threshold=shown), {"drift": [], "realized": []})
    assert "<th>decision threshold</th>" in page and "<td>0.1834 on P(malignant)</td>" in page


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../other/validation/result.html",
        "validation/../../x/result.html",
        "a//result.html",
        "validation/ds=2026-01-01/data.parquet",
        "validation\\result.html",
        "drift/./report.html",
    ],
)
def test_report_paths_outside_the_known_report_files_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        views.report_path("team", path)


def test_report_paths_of_known_reports_pass() -> None:
    assert views.report_path("team", "reports/drift/ds=2026-02-01/v1/report.html").endswith("report.html")


def test_report_links_stay_inside_the_pipelines_lake_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    lake = "s3://lake/root"
    url = links.report_url("team", f"{lake}/team/validation/ds=2026-02-01/abc/result.html", lake)
    assert url == "/mlops/reports/team?path=validation%2Fds%3D2026-02-01%2Fabc%2Fresult.html"
    assert links.report_url("team", f"{lake}/other/validation/result.html", lake) is None
    assert links.report_url("team", None, lake) is None


def test_mlflow_links_need_a_reachable_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert links.run_url("1", "abc") is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000/")
    assert links.run_url("1", "abc") == "http://mlflow:5000/#/experiments/1/runs/abc"
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "https://mlflow.example.com")
    assert links.version_url("team", "2") == "https://mlflow.example.com/#/models/team/versions/2"


def test_a_step_records_its_links_for_airflow_to_store() -> None:
    class Step:
        pass

    step = Step()
    links.remember(step, links.MLflowRunLink.name, "http://m/#/experiments/1/runs/r")
    links.remember(step, links.DriftReportLink.name, None)
    assert links.MLflowRunLink().get_link(step, ti_key=None) == "http://m/#/experiments/1/runs/r"  # type: ignore[arg-type]
    assert links.DriftReportLink().get_link(step, ti_key=None) == ""  # type: ignore[arg-type]
