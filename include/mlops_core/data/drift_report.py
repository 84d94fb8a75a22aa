"""The Evidently drift report: the same methods, thresholds and samples as the engine's verdicts.

:func:`evidently_report` renders Evidently's DataDriftPreset (with the engine's chi-square
registered under its own name, so rare categories are pooled alike) and DataSummaryPreset on the
bounded, seeded samples :func:`mlops_core.data.drift.compute_drift` judged, as standalone HTML
and its snapshot JSON; :func:`report_drift_tests` reads back which test ran per column.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlops_core.data.drift import EVIDENTLY_NAMES, MISSING, _categorical, _sample

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.data.drift import DriftResult


def _evidently_chi2(
    reference_data: pd.Series, current_data: pd.Series, feature_type: Any, threshold: float
) -> Any:
    _, p = _categorical(
        "chi2",
        reference_data.astype("string").fillna(MISSING),
        current_data.astype("string").fillna(MISSING),
    )
    return p, p is not None and p < threshold


def _register_evidently_tests() -> None:
    """Evidently runs the engine's chi-square under the name ``mlops_chi2`` (idempotent)."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    test = StatTest(
        name=EVIDENTLY_NAMES["chi2"],
        display_name="chi-square p_value (two-sample, rare categories pooled)",
        allowed_feature_types=[ColumnType.Categorical],
    )
    register_stattest(test, default_impl=_evidently_chi2)


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    *,
    sample_size: int = 10_000,
) -> tuple[str, dict[str, Any]]:
    """Evidently 0.7 Report (DataDriftPreset with the same methods and thresholds + DataSummaryPreset).

    Rendered on the same bounded, seeded samples the verdicts used, so it is quick and it agrees.
    Returns the HTML page and the snapshot's own JSON (``Snapshot.dict()``: every metric with its
    method and threshold, what machines and tests read).
    """
    import numpy as np
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    _register_evidently_tests()
    numeric = [c.column for c in result.columns if c.kind == "numeric"]
    categorical = [c.column for c in result.columns if c.kind == "categorical"]
    rng = np.random.default_rng(result.seed)
    ref = _sample(reference[numeric + categorical], sample_size, rng)
    cur = _sample(current[numeric + categorical], sample_size, rng)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(
        columns=numeric + categorical,
        per_column_method={c.column: EVIDENTLY_NAMES[c.method] for c in result.columns},
        per_column_threshold={c.column: c.threshold for c in result.columns},
        drift_share=0.5,
    )
    snapshot = Report([preset, DataSummaryPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    return _snapshot_html(snapshot), json.loads(snapshot.json())


def evidently_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    *,
    sample_size: int = 10_000,
) -> str:
    """The HTML page of :func:`evidently_report`."""
    return evidently_report(reference, current, result, sample_size=sample_size)[0]


def report_drift_tests(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column, the drift test Evidently ran as its snapshot JSON records it: method, threshold, value.

    Evidently 0.7 names each per-column metric ``ValueDrift(column=<c>,method=<m>,threshold=<t>)``.
    """
    import re

    found: dict[str, dict[str, Any]] = {}
    pattern = re.compile(
        r"ValueDrift\(column=(?P<column>.+?),method=(?P<method>.+?),threshold=(?P<threshold>[^)]+)\)"
    )
    for metric in snapshot.get("metrics", []):
        match = pattern.fullmatch(str(metric.get("metric_name", "")))
        if match:
            found[match["column"]] = {
                "method": match["method"],
                "threshold": float(match["threshold"]),
                "value": metric.get("value"),
            }
    return found


_NO_DATA = "<!-- no embedded data -->"  # what Evidently's template leaves when asked not to embed data


def _snapshot_html(snapshot: Any) -> str:
    """``snapshot.save_html`` output, with the data serialised by :func:`mlops_core.base.html.script_json`.

    Evidently 0.7 embeds the widgets (column names, values, plots) as raw ``json.dumps`` inside a
    ``<script>``, so a value holding ``</script>`` would end the tag and run what follows. This is
    Evidently's ``Snapshot.get_html_str`` / ``render_widgets`` with the one change that matters:
    the template is asked for no data block and the escaped one takes the comment it leaves. The
    JSON parses to the same values, so the page renders as before.
    """
    import uuid

    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo, BaseWidgetInfo
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils import NumpyEncoder
    from evidently.legacy.utils.dashboard import TemplateParams, file_html_template

    from mlops_core.base.html import script_json

    widgets = [group_widget(title="", widgets=snapshot._widgets), *snapshot._tests_widgets]
    graphs: dict[str, Any] = {}
    for widget in widgets:
        for graph in widget.get_additional_graphs():
            info = graph.params if isinstance(graph, AdditionalGraphInfo) else graph
            graphs[str(graph.id)] = info.dict() if isinstance(info, BaseWidgetInfo) else info
    dashboard_id = "metric_" + uuid.uuid4().hex
    dashboard = DashboardInfo(name="Report", widgets=widgets).dict()
    for widget_dict in dashboard["widgets"]:
        widget_dict.pop("additionalGraphs", None)
    data = (
        f"<script>\n    var {dashboard_id} = {script_json(dashboard, cls=NumpyEncoder)};\n"
        f"    var additional_graphs_{dashboard_id} = {script_json(graphs, cls=NumpyEncoder)};\n</script>"
    )
    page = file_html_template(
        TemplateParams(
            dashboard_id=dashboard_id,
            dashboard_info=DashboardInfo(name="Report", widgets=[]),
            additional_graphs={},
            embed_data=False,
        )
    )
    head, marker, tail = page.partition(_NO_DATA)
    if not marker:  # a newer Evidently changed its template: fail rather than write an unescaped page
        raise RuntimeError("Evidently's HTML template has no data placeholder; cannot write a safe report")
    return head + data + tail
