"""Script payloads in data values and column names stay inert in both HTML reports the package writes.

Data producers are untrusted (ARCHITECTURE.md, "Trust boundaries"); the reports are opened in a
browser from the lake. Both reports are built once, on the real GX and Evidently.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_core.base import settings
from mlops_core.data import drift, drift_report, storage, validation
from mlops_dev import datasets
from tests.helpers import example_data, example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"
CLOSE_SCRIPT = "</script><script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg/onload=alert(1)>'
LINE_SEP = "a\u2028b"
PAYLOADS = [CLOSE_SCRIPT, IMG, SVG, LINE_SEP]
RAW = ["<script>alert(1)", "<img src=x", "<svg/onload"]
# Evidently's page: the template's own data block, as it writes it (one line per JSON payload).
DATA_BLOCK = re.compile(
    r"<script>\n    var (metric_\w+) = (.*);\n    var additional_graphs_\1 = (.*);\n</script>"
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The validation page and the Evidently page, for data whose values and column names are payloads."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(tmp_path_factory.mktemp("local")))
        return {"validation": _validation_html(), "drift": _drift_html()}


def _validation_html() -> str:
    hostile = [
        {"expect_column_values_to_not_be_null": {"column": CLOSE_SCRIPT}},
        {"expect_column_values_to_be_in_set": {"column": IMG, "value_set": ["ok"]}},
        {"expect_column_to_exist": {"column": SVG}},
    ]
    spec = example_spec(expectations=example_data()["expectations"] + hostile)
    frame = datasets.load_example("breast_cancer")
    n = len(frame)
    frame.loc[:3, "diagnosis"] = PAYLOADS  # fails the spec's own value_set check
    frame[CLOSE_SCRIPT] = [None, *PAYLOADS] * (n // 5) + PAYLOADS[: n % 5]
    frame[IMG] = (PAYLOADS * n)[:n]
    m = storage.write_partition({"data": frame}, settings.lake_root(), spec.name, "raw", DS)
    with pytest.raises(validation.DataValidationFailed) as info:
        validation.validate_partition(spec, m.uri, settings.lake_root(), DS)
    assert len(info.value.report.failed) == 4
    return storage.read_file(info.value.report.html_uri or "").decode()


def _drift_html() -> str:
    rng = np.random.default_rng(0)
    n = 400
    ref = pd.DataFrame(
        {CLOSE_SCRIPT: rng.choice(PAYLOADS, n), IMG: rng.normal(size=n), "x": rng.normal(size=n)}
    )
    cur = pd.DataFrame(
        {
            CLOSE_SCRIPT: rng.choice([*PAYLOADS, SVG + "new"], n),
            IMG: rng.normal(size=n) + 1,
            "x": rng.normal(size=n),
        }
    )
    result = drift.compute_drift(ref, cur, [IMG, "x"], [CLOSE_SCRIPT])
    return drift_report.evidently_html(ref, cur, result)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_validation_page_escapes_values_and_column_names_and_allows_no_script(reports):
    page = reports["validation"]
    for raw in RAW:
        assert raw not in page
    assert "<script" not in page.lower()
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in page
    # each payload is on the page, as text: column names (arguments), values (observed), the missing column
    assert "column = &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "column = &lt;img src=x onerror=alert(1)&gt;" in page
    assert "column = &quot;&gt;&lt;svg/onload=alert(1)&gt;" in page
    assert "<code>&quot;&gt;&lt;svg/onload=alert(1)&gt;</code> &times;" in page  # an unexpected value
    assert "expect_column_values_to_be_in_set" in page and "failed" in page


def test_evidently_page_embeds_json_that_cannot_close_its_script_and_round_trips(reports):
    page = reports["drift"]
    for raw in [*RAW, "\u2028"]:
        assert raw not in page
    blocks = list(DATA_BLOCK.finditer(page))
    assert len(blocks) == 1, "Evidently's data block, once, where its template puts it"
    block = blocks[0]
    assert "<" not in block.group(2) + block.group(3)  # so nothing in the data can close the <script>
    assert "\\u003cscript\\u003ealert(1)" in block.group(2) and "\\u003cimg src=x" in block.group(2)
    strings = _strings(json.loads(block.group(2))) + _strings(json.loads(block.group(3)))
    for payload in PAYLOADS:  # the page shows the original values
        assert any(payload in s for s in strings), payload
    assert "window.drawDashboard(" + block.group(1) in page  # the page still draws that data
