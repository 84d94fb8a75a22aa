"""Data validation with Great Expectations 1.x, built from the spec.

The suite is the spec's ``expectations`` plus the ones any trainable table needs (the target and
every named feature column exist; the target has no nulls). The full result is saved as GX's JSON
and as an HTML page next to the data (built here, every data value escaped, no script); a failure
raises :class:`DataValidationFailed` whose message lists each failed expectation with what was observed.

With ``contract.enabled`` and a champion, the partition is also checked against the champion's data
contract (:mod:`mlops_core.data.contract`, learned from the rows it trained on): every violation is in
the saved JSON and page, and the fatal ones fail validation like a failed expectation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.data.contract import Violation
    from mlops_core.spec import ExpectationSpec, PipelineSpec

log = logging.getLogger(__name__)

# Great Expectations logs about 200 INFO lines at import ("Skipping registering function ...",
# "Multiple declarations of metric ..."): its own bookkeeping, nothing about the data. Quieted
# here, before anything imports it, so a task log shows the validation, not the library's start-up.
for _noisy in ("great_expectations._docs_decorators", "great_expectations.expectations.registry"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


@dataclass
class FailedExpectation:
    type: str
    kwargs: dict[str, Any]
    observed: Any
    details: str

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.type}({args}): observed {self.observed}{'; ' + self.details if self.details else ''}"


@dataclass
class ValidationReport:
    """Summary of one validation: what a task log and XCom need; the full result is in ``json_uri``."""

    success: bool
    suite: str
    evaluated: int
    failed: list[FailedExpectation] = field(default_factory=list)
    json_uri: str | None = None
    html_uri: str | None = None
    html_file: str | None = None
    contract: list[Violation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        head = f"suite {self.suite}: {self.evaluated - len(self.failed)}/{self.evaluated} expectations passed"
        lines = [head] + [f"  FAILED {f.describe()}" for f in self.failed]
        lines += [f"  {'FAILED' if v.fatal else 'WARNING'} {v.describe()}" for v in self.contract]
        if self.html_file or self.html_uri:
            lines.append(f"  full report: {self.html_file or self.html_uri}")
        return "\n".join(lines)


class DataValidationFailed(Exception):
    """The data broke the suite. Carries the :class:`ValidationReport`; nothing downstream may run."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__("data validation failed, nothing downstream will run:\n" + report.describe())


ROW_COUNT = "expect_table_row_count_to_be_between"


def suite_for(spec: PipelineSpec, *, with_target: bool = True) -> list[ExpectationSpec]:
    """The spec's expectations plus the structural ones a trainable table needs.

    A scoring suite (``with_target=False``: batch scoring, monitoring) replaces the row-count rule
    written for the training table with ``scoring.min_rows``: a day of 32 rows is scored, an
    empty batch is not.
    """
    from mlops_core.spec import ExpectationSpec

    implicit: list[ExpectationSpec] = []
    if not with_target:
        implicit.append(ExpectationSpec(type=ROW_COUNT, kwargs={"min_value": spec.scoring.min_rows}))
    if with_target:
        implicit.append(ExpectationSpec(type="expect_column_to_exist", kwargs={"column": spec.target}))
        implicit.append(
            ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": spec.target})
        )
    for col in spec.features.include or []:
        implicit.append(ExpectationSpec(type="expect_column_to_exist", kwargs={"column": col}))
    wanted = [
        e
        for e in spec.expectations
        if with_target or (e.kwargs.get("column") != spec.target and e.type != ROW_COUNT)
    ]
    seen = {(e.type, json.dumps(e.kwargs, sort_keys=True)) for e in wanted}
    return [e for e in implicit if (e.type, json.dumps(e.kwargs, sort_keys=True)) not in seen] + wanted


def _class_name(snake: str) -> str:
    special = {"kl": "KL"}
    return "".join(special.get(p, p.capitalize()) for p in snake.split("_"))


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so the JSON and the page show plain values."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _failure(res: Any) -> FailedExpectation:
    cfg = res.expectation_config
    result = res.result or {}
    kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    if res.exception_info and res.exception_info.get("raised_exception"):
        return FailedExpectation(
            cfg.type, kwargs, "error", str(res.exception_info.get("exception_message", ""))[:300]
        )
    if "observed_value" in result:
        observed = _plain(result["observed_value"])
    elif "unexpected_count" in result:
        pct = result.get("unexpected_percent")
        observed = f"{result['unexpected_count']} unexpected value(s)" + (
            f" ({pct:.2f}%)" if pct is not None else ""
        )
    elif cfg.type == "expect_column_to_exist":
        observed = "column missing"
    else:
        observed = "n/a"
    sample = result.get("partial_unexpected_list")
    details = f"e.g. {[_plain(v) for v in sample[:5]]}" if sample else ""
    return FailedExpectation(cfg.type, kwargs, observed, details)


def run_suite(
    df: pd.DataFrame, expectations: list[ExpectationSpec], suite_name: str
) -> tuple[ValidationReport, Any]:
    """Validate ``df`` with an ephemeral GX context; return the summary and GX's full result object."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        context.data_sources.add_pandas("mlops")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for exp in expectations:
        cls = getattr(gxe, _class_name(exp.type), None)
        if cls is None:
            raise ValueError(f"Great Expectations has no expectation {exp.type!r}")
        try:
            suite.add_expectation(cls(**exp.kwargs))
        except Exception as err:  # pydantic errors from GX name the bad argument
            raise ValueError(f"expectation {exp.type} has bad arguments {exp.kwargs}: {err}") from err
    result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite, result_format="SUMMARY")
    for res in result.results:  # plain values for the JSON, the page and the failure message
        if res.result and "observed_value" in res.result:
            res.result["observed_value"] = _plain(res.result["observed_value"])
    failed = [_failure(r) for r in result.results if not r.success]
    report = ValidationReport(
        success=bool(result.success), suite=suite_name, evaluated=len(result.results), failed=failed
    )
    return report, result


_CELL_LIMIT = 2_000  # characters of one value shown on the page; the JSON has everything
_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #ccc; padding: .4rem; }
th { background: #f3f3f3; text-align: left; } td { vertical-align: top; }
code, pre { white-space: pre-wrap; word-break: break-all; margin: 0; font-size: .85rem; }
.passed { color: #1a7f37; } .failed { color: #cf222e; font-weight: bold; }
"""


def _text(value: Any) -> str:
    """One value as escaped text: strings as they are, anything else as JSON; long values cut."""
    from mlops_core.base.html import escape

    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > _CELL_LIMIT:
        text = text[:_CELL_LIMIT] + f"... ({len(text) - _CELL_LIMIT} more characters)"
    return escape(text)


def _observed_cell(res: dict[str, Any]) -> str:
    info = res.get("exception_info") or {}
    if info.get("raised_exception"):
        return f"<pre>error: {_text(info.get('exception_message') or '')}</pre>"
    result = res.get("result") or {}
    parts = []
    if "observed_value" in result:
        parts.append(f"<pre>{_text(result['observed_value'])}</pre>")
    if "unexpected_count" in result:
        pct = result.get("unexpected_percent")
        pct_text = f" ({pct:.2f}%)" if isinstance(pct, (int, float)) else ""
        parts.append(f"<p>{_text(result['unexpected_count'])} unexpected{pct_text}</p>")
    counts = result.get("partial_unexpected_counts")
    sample = result.get("partial_unexpected_list")
    if counts:
        items = "".join(
            f"<li><code>{_text(c.get('value'))}</code> &times; {_text(c.get('count'))}</li>" for c in counts
        )
        parts.append(f"<p>e.g.</p><ul>{items}</ul>")
    elif sample:
        parts.append(f"<p>e.g.</p><pre>{_text(sample)}</pre>")
    return "".join(parts)


def _contract_html(contract: dict[str, Any]) -> str:
    """The contract section of the page: the champion checked against, then one row per violation."""
    head = f"<h2>Data contract</h2>\n<p>{_text(contract.get('note', ''))}</p>\n"
    violations = contract.get("violations") or []
    if not violations:
        return head
    rows = []
    for v in violations:
        status = "failed" if v.get("fatal") else "warning"
        rows.append(
            f'<tr><td class="{"failed" if v.get("fatal") else "passed"}">{status}</td>'
            f"<td><code>{_text(v.get('column', ''))}</code></td><td>{_text(v.get('rule', ''))}</td>"
            f"<td>{_text(v.get('expected', ''))}</td><td>{_text(v.get('observed', ''))}</td></tr>"
        )
    return (
        head
        + "<table><tr><th>status</th><th>column</th><th>rule</th><th>expected</th><th>observed</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )


def render_html(result: Any, contract: dict[str, Any] | None = None) -> str:
    """A standalone page for one GX validation result, built here rather than by GX's renderer.

    GX's Data Docs templates render without autoescaping and splice data values into markup and
    inline scripts, so a column name or a cell value could run script on the page. Here every data
    value goes through :func:`mlops_core.base.html.escape` and the page forbids script by CSP.
    ``contract`` (the ``contract`` entry of ``result.json``) adds the data contract's section.
    """
    from mlops_core.base.html import document, escape

    doc = result.to_json_dict()
    stats = doc.get("statistics") or {}
    suite = doc.get("suite_name") or ""
    fatal = any(v.get("fatal") for v in (contract or {}).get("violations") or [])
    verdict = "passed" if doc.get("success") and not fatal else "failed"
    rows = []
    for res in doc.get("results") or []:
        cfg = res.get("expectation_config") or {}
        kwargs = {k: v for k, v in (cfg.get("kwargs") or {}).items() if k != "batch_id"}
        args = "".join(f"<li><code>{escape(k)} = {_text(v)}</code></li>" for k, v in kwargs.items())
        status = "passed" if res.get("success") else "failed"
        rows.append(
            f'<tr><td class="{status}">{status}</td><td><code>{_text(cfg.get("type", ""))}</code></td>'
            f"<td><ul>{args}</ul></td><td>{_observed_cell(res)}</td></tr>"
        )
    meta = doc.get("meta") or {}
    run_at = (meta.get("batch_markers") or {}).get("ge_load_time", "")
    body = (
        f'<h1>Validation of {_text(suite)}: <span class="{verdict}">{verdict}</span></h1>\n'
        f"<p>{_text(stats.get('successful_expectations', 0))} of {_text(stats.get('evaluated_expectations', 0))}"
        f" expectations passed; Great Expectations {_text(meta.get('great_expectations_version', ''))};"
        f" run {_text(run_at)}. The full result is <code>result.json</code> next to this page.</p>\n"
        "<table><tr><th>status</th><th>expectation</th><th>arguments</th><th>observed</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n"
        + (_contract_html(contract) if contract is not None else "")
    )
    return document(f"Validation of {suite}: {verdict}", body, style=_PAGE_STYLE)


def champion_contract(spec: PipelineSpec) -> tuple[dict[str, Any] | None, str]:
    """The champion's data contract and a note saying which one (or why there is none).

    No champion, or a champion trained before contracts were recorded, means no contract. Any
    registry or artifact-store error raises (:class:`~mlops_core.runs.registry.RegistryUnavailable`
    from the alias lookup): a partition is never waved through because MLflow was down.
    """
    from mlops_core.runs import run_artifacts

    name = spec.registered_model_name
    contract, version, run_id = run_artifacts.champion_artifact(name, "contract.json")
    if version is None:
        return None, f"no champion of {name} yet: no contract to check"
    if contract is None:
        return (
            None,
            f"champion {name} v{version} (run {run_id}) has no contract.json (trained before contracts)",
        )
    return contract, f"checked against the contract of champion {name} v{version} (run {run_id})"


def _check_contract(
    spec: PipelineSpec, df: pd.DataFrame, *, with_target: bool, stage: str
) -> tuple[list[Violation], dict[str, Any] | None]:
    """The contract's violations and the ``contract`` entry for ``result.json`` (None: disabled)."""
    if not spec.contract.enabled:
        return [], None
    from mlops_core.data import contract

    learned, note = champion_contract(spec)
    log.info("data contract: %s", note)
    if learned is None:
        return [], {"note": note, "violations": []}
    found = contract.check(learned, df, spec, with_target=with_target, stage=stage)
    return found, {"note": note, "violations": [v.to_dict() for v in found]}


def _one_class(
    spec: PipelineSpec, df: pd.DataFrame, data_uri: str, storage_options: dict[str, Any] | None
) -> Violation | None:
    """A classification target with fewer than two classes in the partition, naming its source file."""
    from mlops_core.data.contract import Violation
    from mlops_core.data.storage import read_manifest

    if spec.problem_type == "regression" or spec.target not in df.columns:
        return None
    labels = df[spec.target].dropna().unique().tolist()
    if len(labels) >= 2:
        return None
    try:
        source = read_manifest(data_uri, storage_options=storage_options).extra.get("source_uri") or data_uri
    except (OSError, ValueError):
        source = data_uri
    return Violation(
        column=spec.target,
        rule="one_class",
        expected="at least 2 classes",
        observed=f"{labels[:1] or 'no label'} in {len(df)} row(s) read from {source}",
        fatal=True,
    )


def validate_partition(
    spec: PipelineSpec,
    data_uri: str,
    lake_root: str,
    ds: str,
    *,
    with_target: bool = True,
    stage: str = "validation",
    storage_options: dict[str, Any] | None = None,
) -> ValidationReport:
    """Validate the partition at ``data_uri``; save JSON + HTML under ``<lake>/<name>/<stage>/ds=<ds>/``.

    Raises :class:`DataValidationFailed` (after saving the report) when any expectation fails or
    the partition breaks the champion's data contract (``monitor_validation`` only reports shifts).
    """
    from mlops_core.data.filesystems import join
    from mlops_core.data.storage import read_frame, write_partition

    df = read_frame(data_uri, storage_options=storage_options)
    report, result = run_suite(df, suite_for(spec, with_target=with_target), f"{spec.name}_{stage}")
    report.contract, contract_doc = _check_contract(spec, df, with_target=with_target, stage=stage)
    one_class = _one_class(spec, df, data_uri, storage_options) if with_target else None
    if one_class is not None:  # with or without a champion's contract: no classifier learns from it
        report.contract.append(one_class)
        contract_doc = contract_doc or {"note": "", "violations": []}
        contract_doc["violations"].append(one_class.to_dict())
    report.success = report.success and not any(v.fatal for v in report.contract)
    doc = result.to_json_dict()
    if contract_doc is not None:
        doc["contract"] = contract_doc
    files = {
        "result.json": json.dumps(doc, indent=2, default=str).encode(),
        "result.html": render_html(result, contract_doc).encode(),
    }
    manifest = write_partition(
        {},
        lake_root,
        spec.name,
        stage,
        ds,
        files=files,
        extra={"success": report.success, "data_uri": data_uri},
        storage_options=storage_options,
    )
    report.json_uri = join(manifest.uri, "result.json")
    report.html_uri = join(manifest.uri, "result.html")  # the newest version's page (links, read_file)
    report.html_file = manifest.file_uri("result.html")  # the stored file of this version (the log)
    log.info("%s", report.describe())
    if not report.success:
        raise DataValidationFailed(report)
    return report
