"""Fast per-column drift on a bounded, seeded sample, plus Evidently's report for people.

Why a sample: two-sample tests on millions of rows flag differences too small to matter and take
long; a fixed-size sample keeps both the cost and the test's power known. With the default
10,000 rows per side, Kolmogorov-Smirnov at p < 0.01 detects a mean shift of ~0.05 standard
deviations with high probability and chi-square detects a few points of category share; with
15 stable columns the chance of two or more false alarms on one day is about 1 %.

Methods (per column type; thresholds are p-values for tests, distances otherwise):

============== ============= ========================================== =========
method         column type   statistic                                  drifted if
============== ============= ========================================== =========
ks             numeric       Kolmogorov-Smirnov D, p-value              p < 0.01
wasserstein    numeric       Wasserstein distance / reference std      d > 0.1
psi            numeric       population stability index (10 ref bins)   psi > 0.2
chi2           categorical   chi-square on category counts, p-value     p < 0.01
jensen_shannon categorical   Jensen-Shannon distance (base 2)           d > 0.1
============== ============= ========================================== =========
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NUMERIC_METHODS = ("ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("chi2", "jensen_shannon")
DEFAULT_THRESHOLDS = {"ks": 0.01, "chi2": 0.01, "wasserstein": 0.1, "psi": 0.2, "jensen_shannon": 0.1}
P_VALUE_METHODS = {"ks", "chi2"}
# The same tests under Evidently's names, so the HTML report agrees with the verdicts.
EVIDENTLY_NAMES = {
    "ks": "ks",
    "wasserstein": "wasserstein",
    "psi": "psi",
    "chi2": "chisquare",
    "jensen_shannon": "jensenshannon",
}
MISSING = "__missing__"


@dataclass
class ColumnDrift:
    column: str
    kind: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int


@dataclass
class DriftResult:
    """One day's verdict: per-column results and the share of drifted columns.

    ``weights`` (column -> the champion's feature importance) make the share the drifted columns'
    part of the total importance, so a shift of the few columns the model relies on counts for
    what it is; without weights every column counts the same. ``critical`` columns fire alone.
    """

    columns: list[ColumnDrift]
    rows: int
    reference_rows: int
    sample_size: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] | None = None
    critical: list[str] = field(default_factory=list)

    @property
    def n_drifted(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def equal_share(self) -> float:
        return self.n_drifted / len(self.columns) if self.columns else 0.0

    @property
    def drift_share(self) -> float:
        if not self.weights:
            return self.equal_share
        total = sum(self.weights.get(c.column, 0.0) for c in self.columns)
        if total <= 0:
            return self.equal_share
        return sum(self.weights.get(c.column, 0.0) for c in self.columns if c.drifted) / total

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def critical_drifted(self) -> list[str]:
        return [c for c in self.drifted_columns if c in self.critical]

    def summary(self) -> dict[str, Any]:
        return {
            "drift_share": round(self.drift_share, 6),
            "equal_share": round(self.equal_share, 6),
            "weighting": "importance" if self.weights else "equal",
            "n_drifted": self.n_drifted,
            "n_columns": len(self.columns),
            "drifted_columns": self.drifted_columns,
            "critical_drifted": self.critical_drifted,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
        }

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.columns])


def _sample(frame: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= size:
        return frame
    idx = rng.choice(len(frame), size=size, replace=False)
    idx.sort()
    return frame.iloc[idx]


def _numeric(method: str, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    import numpy as np
    from scipy import stats

    if method == "ks":
        res = stats.ks_2samp(ref, cur)
        return float(res.statistic), float(res.pvalue)
    if method == "wasserstein":
        scale = float(np.std(ref)) or 1.0
        return float(stats.wasserstein_distance(ref, cur) / scale), None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    if len(edges) < 3:  # (near-)constant reference: compare against its single value
        edges = np.array([-np.inf, float(edges[0]), np.inf])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r))), None


def _categorical(method: str, ref: pd.Series, cur: pd.Series) -> tuple[float, float | None]:
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    counts = ref.value_counts().to_frame("ref").join(cur.value_counts().rename("cur"), how="outer").fillna(0)
    if method == "chi2":
        table = counts.to_numpy(dtype=float).T
        if table.shape[1] < 2:
            return 0.0, 1.0
        res = stats.chi2_contingency(table)
        return float(res.statistic), float(res.pvalue)
    p = counts["ref"].to_numpy(dtype=float) / counts["ref"].sum()
    q = counts["cur"].to_numpy(dtype=float) / counts["cur"].sum()
    return float(np.nan_to_num(distance.jensenshannon(p, q, base=2))), None


def _verdict(method: str, statistic: float, p_value: float | None, threshold: float) -> bool:
    if method in P_VALUE_METHODS:
        return p_value is not None and p_value < threshold
    return not math.isnan(statistic) and statistic > threshold


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    numeric_method: str = "ks",
    categorical_method: str = "chi2",
    column_methods: dict[str, str] | None = None,
    column_thresholds: dict[str, float] | None = None,
    sample_size: int = 10_000,
    seed: int = 0,
) -> DriftResult:
    """Per-column drift of ``current`` against ``reference`` on at most ``sample_size`` rows per side."""
    import numpy as np
    import pandas as pd

    column_methods, column_thresholds = column_methods or {}, column_thresholds or {}
    rng = np.random.default_rng(seed)
    cols = [*numeric, *categorical]
    ref = _sample(reference[cols], sample_size, rng)
    cur = _sample(current[cols], sample_size, rng)
    results = []
    for col in cols:
        kind = "numeric" if col in numeric else "categorical"
        method = column_methods.get(col, numeric_method if kind == "numeric" else categorical_method)
        threshold = column_thresholds.get(col, DEFAULT_THRESHOLDS[method])
        if kind == "numeric":
            r = pd.to_numeric(ref[col], errors="coerce").dropna().to_numpy(float)
            c = pd.to_numeric(cur[col], errors="coerce").dropna().to_numpy(float)
            stat, p = _numeric(method, r, c) if len(r) and len(c) else (math.nan, None)
        else:
            r_s, c_s = ref[col].astype("string").fillna(MISSING), cur[col].astype("string").fillna(MISSING)
            stat, p = _categorical(method, r_s, c_s)
            r, c = r_s.to_numpy(), c_s.to_numpy()
        results.append(
            ColumnDrift(
                col, kind, method, stat, p, threshold, _verdict(method, stat, p, threshold), len(r), len(c)
            )
        )
    return DriftResult(
        results, rows=len(current), reference_rows=len(reference), sample_size=sample_size, seed=seed
    )


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
    """``snapshot.save_html`` output, with the data serialised by :func:`mlops_core.html.script_json`.

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

    from mlops_core.html import script_json

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
