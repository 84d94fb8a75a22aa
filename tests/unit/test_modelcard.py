"""Model cards on the real libraries (MLflow on a temporary SQLite store, the lake on disk, no Airflow).

One module-wide store: a first model (forced through the gate, deployed as champion) and a second
one trained on the same rows (compared with the champion: the gate rejects an equal model). The
data carries a hostile column whose categories are payloads, and the YAML a hostile description.
Slices are checked twice: a slice report written into ``gate_decision.json`` (hostile values), and
a pipeline whose gate computes one (``evaluation.slices``).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from mlops_core import lifecycle, rollout
from mlops_core.base import settings
from mlops_core.data import filesystems, storage
from mlops_core.model import modelcard, training
from mlops_core.runs import registry, run_artifacts
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"
NAME = "card_test"
CLOSE_SCRIPT = "</script><script>alert(1)</script>"
PIPES = "| x |"
JS_LINK = "[a](javascript:alert(1))"
LINE_SEP = "a\u2028b"
PAYLOADS = [CLOSE_SCRIPT, PIPES, JS_LINK, LINE_SEP]
COLUMN = f"{CLOSE_SCRIPT} {PIPES}"
DESCRIPTION = " ".join(PAYLOADS) + "\n# not a heading `code`"
AIRFLOW = {
    "airflow.dag_id": f"{NAME}_training",
    "airflow.run_id": "manual__1",
    "airflow.try_number": "1",
    "airflow.logical_date": "2026-02-01T00:00:00+00:00",
}


def _spec(name: str = NAME, **evaluation: Any) -> Any:
    return example_spec(
        name=name,
        description=DESCRIPTION,
        source={"uri": "${MLOPS_LANDING}/card_test/data.csv"},
        model={"family": "random_forest", "params": {"n_estimators": 20, "max_depth": 4}, "seed": 42},
        evaluation={"bootstrap": {"n_resamples": 100, "confidence": 0.9, "seed": 0}, **evaluation},
    )


def _landing() -> None:
    frame = datasets.load_example("breast_cancer")
    frame[COLUMN] = (PAYLOADS * len(frame))[: len(frame)]
    fs, path = filesystems.filesystem(filesystems.join(settings.landing_root(), NAME, "data.csv"))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe(path, frame.to_csv(index=False).encode())


def _train(spec: Any, raw: str, key: str, **gate: Any) -> dict[str, Any]:
    lake = settings.lake_root()
    trained = training.train(spec, raw, lake, DS, AIRFLOW).to_dict()
    decision = lifecycle.gate(spec, lifecycle.evaluate(spec, trained, lake, DS), trained["run_id"], **gate)
    registered = lifecycle.register(spec, trained, decision.to_dict(), key, {})
    return {"trained": trained, "decision": decision.to_dict(), "registered": registered, "key": key}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(tmp_path_factory.mktemp("modelcard")))
        spec = _spec()
        _landing()
        raw = lifecycle.ingest(spec, DS, settings.lake_root())["uri"]
        first = _train(spec, raw, "card/first", force=True, forced_by="tester", force_reason=JS_LINK)
        rollout.deploy(spec, first["registered"]["version"])
        second = _train(spec, raw, "card/second")
        yield {"spec": spec, "first": first, "second": second}


class _Page(HTMLParser):
    """Tags, attributes, text and per-row cell counts of a page."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.tables: list[list[int]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def assert_inert(self) -> None:
        assert not {"script", "a", "img", "iframe", "object", "embed", "svg"} & set(self.tags), self.tags
        for name, value in self.attrs:
            assert not name.startswith("on"), name
            assert name not in ("href", "src", "action", "formaction"), (name, value)
            assert "javascript:" not in (value or "").lower()
        for table in self.tables:  # no value opened or closed a cell or a row
            assert len(set(table)) == 1, table


def _version_tags(version: str) -> dict[str, str]:
    return dict(registry.client().get_model_version(NAME, version).tags)


def _card_text(uri: str) -> str:
    return storage.read_file(uri).decode()


def _artifact(run_id: str, path: str) -> str:
    import mlflow

    return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


def test_each_version_has_its_card_in_mlflow_and_the_lake_and_is_tagged_with_it(store):
    for which in ("first", "second"):
        reg, run_id = store[which]["registered"], store[which]["trained"]["run_id"]
        folder = reg["model_card_uri"].rsplit("/", 1)[0]
        assert folder == f"{settings.lake_root()}/{NAME}/model_cards/v{reg['version']}/ds={DS}"
        assert reg["model_card_html_uri"] == f"{folder}/model_card.html"
        manifest = storage.read_manifest(folder)
        assert {f.name for f in manifest.files} == {"model_card.md", "model_card.html", "model_card.json"}
        tags = _version_tags(reg["version"])
        assert tags[modelcard.CARD_TAG] == folder
        assert tags[modelcard.CARD_VERSION_TAG] == str(manifest.version)
        # the same bytes in both: the run holds the card of the newest version registered from it
        # (another test of this module may register one more version from the same run: a retry)
        newest = max(
            int(v.version)
            for v in registry.client().search_model_versions(f"name = '{NAME}'")
            if v.run_id == run_id
        )
        newest_folder = _version_tags(str(newest))[modelcard.CARD_TAG]
        for name in ("model_card.md", "model_card.html", "model_card.json"):
            assert _artifact(run_id, name) == _card_text(f"{newest_folder}/{name}")
        page = _card_text(reg["model_card_html_uri"])
        assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in page


def test_lineage_data_and_metrics_are_the_runs_and_the_manifests_by_value(store):
    spec, second = store["spec"], store["second"]
    version, run_id = second["registered"]["version"], second["trained"]["run_id"]
    card = modelcard.build(spec, NAME, version)
    run = registry.client().get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    for key in modelcard.RUN_LINEAGE:
        assert card.lineage[key] == tags[key], key
    assert {k: card.lineage[k] for k in AIRFLOW} == AIRFLOW
    vtags = _version_tags(version)
    assert card.lineage["mlflow.run_id"] == run_id == vtags[registry.RUN_ID_TAG]
    assert card.lineage[registry.MODEL_URI_TAG] == second["trained"]["model_uri"]
    assert card.lineage[registry.DIGEST_TAG] == run_artifacts.artifact_digest(f"models:/{NAME}/{version}")
    for part, rows in (("raw", None), ("holdout", second["trained"]["n_holdout"])):
        manifest = storage.read_manifest(
            tags[f"mlops.{part}_uri"], version=int(tags[f"mlops.{part}_manifest_version"])
        )
        assert card.data[f"{part}_sha256"] == manifest.sha256 == tags[f"mlops.{part}_sha256"]
        assert card.data[f"{part}_manifest_version"] == str(manifest.version)
        assert card.data[f"{part}_check"] == "matches the lake manifest"
        assert rows is None or manifest.rows == rows == card.data["rows_holdout"]
    raw = storage.read_manifest(tags["mlops.raw_uri"], version=int(tags["mlops.raw_manifest_version"]))
    assert card.data["rows_raw"] == raw.rows and card.data["source_uri"] == raw.extra["source_uri"]
    assert card.data["rows_train"] == second["trained"]["n_train"] and card.data["training_day"] == DS
    assert card.features == {"numeric": second["trained"]["numeric"], "categorical": [COLUMN]}
    contract = {c["column"]: c for c in (card.contract or {})["columns"]}
    assert sorted(contract[COLUMN]["categories"]) == sorted(PAYLOADS)
    assert contract[spec.target]["role"] == "target"
    # metrics: the run's, by value, for both models, and the interval of the improvement
    m = card.metrics
    assert m["challenger"] == {
        k[len("holdout_") :]: v for k, v in metrics.items() if k.startswith("holdout_")
    }
    assert m["champion"] == {
        k[len("champion_holdout_") :]: v for k, v in metrics.items() if k.startswith("champion_holdout_")
    }
    assert m["champion_version"] == store["first"]["registered"]["version"]
    imp = m["improvement"]
    assert (imp["delta"], imp["low"], imp["high"]) == (
        metrics["improvement"],
        metrics["improvement_ci_low"],
        metrics["improvement_ci_high"],
    )
    assert imp["confidence"] == 0.9 and imp["n_resamples"] == 100
    # no evaluation.threshold: the card says what the saved model applies (its own predict)
    assert tags["mlops.threshold"] == vtags["mlops.threshold"] == "default"
    assert m["threshold"] == "default (0.5: the most probable class)"
    assert card.gate["outcome"] == vtags[registry.GATE_TAG] == "reject"
    assert card.gate["reasons"] == second["decision"]["reasons"]
    text = card.markdown()
    assert (
        f"| roc_auc | {metrics['holdout_roc_auc']:.6g} | {metrics['champion_holdout_roc_auc']:.6g} |" in text
    )
    # the JSON in the lake is the card itself
    assert json.loads(
        _card_text(second["registered"]["model_card_uri"].replace(".md", ".json"))
    ) == json.loads(card.to_json())


def test_hostile_description_column_and_categories_arrive_escaped_in_html_and_markdown(store):
    from markdown_it import MarkdownIt

    reg = store["first"]["registered"]
    page, text = _card_text(reg["model_card_html_uri"]), _card_text(reg["model_card_uri"])
    html = _Page(page)
    html.assert_inert()
    assert "\u2028" not in page and "<script" not in page.lower()
    shown = "".join(html.text)
    for payload in [*PAYLOADS, COLUMN]:  # the page shows the original values, as text
        assert payload in shown, payload
    assert "# not a heading `code`" in shown
    # Markdown: one line per value, nothing a renderer turns into markup
    assert "\u2028" not in text and "\n# not a heading" not in text
    assert CLOSE_SCRIPT not in text and JS_LINK not in text and PIPES not in text
    rendered = _Page(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))
    rendered.assert_inert()
    assert len(rendered.tables) >= 3  # partitions, contract, metrics: every row as wide as its header
    assert {"h1", "h2", "li", "table"} <= set(rendered.tags)
    assert rendered.tags.count("h1") == 1  # the description's "# ..." stayed text
    words = "".join(rendered.text)
    for payload in [*PAYLOADS, COLUMN, "# not a heading `code`"]:
        assert payload in words, payload
    # the force reason (from the gate's trigger params) is escaped the same way
    assert "force reason" in words and JS_LINK in words


def test_a_retried_register_creates_no_version_and_publishes_the_same_card(store):
    spec, second = store["spec"], store["second"]
    client = registry.client()
    before = {v.version for v in client.search_model_versions(f"name = '{NAME}'")}
    first = second["registered"]
    folder = first["model_card_uri"].rsplit("/", 1)[0]
    old = storage.read_manifest(folder)
    again = lifecycle.register(spec, second["trained"], second["decision"], second["key"], {})
    assert not again["created"] and again["version"] == first["version"]
    assert {v.version for v in client.search_model_versions(f"name = '{NAME}'")} == before
    assert (again["model_card_uri"], again["model_card_html_uri"]) == (
        first["model_card_uri"],
        first["model_card_html_uri"],
    )
    new = storage.read_manifest(folder)
    assert new.version == old.version + 1  # a new lake version of the same partition...
    for name in ("model_card.md", "model_card.html", "model_card.json"):  # ...with the same card
        assert _card_text(old.file_uri(name)) == _card_text(new.file_uri(name))
    assert _version_tags(first["version"])[modelcard.CARD_VERSION_TAG] == str(new.version)


def test_a_card_that_fails_raises_and_the_retry_finds_the_version_and_publishes_it(store, monkeypatch):
    spec, second = store["spec"], store["second"]
    key, run_id = "card/retry", second["trained"]["run_id"]

    def lake_down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("lake unavailable")

    with monkeypatch.context() as mp:
        mp.setattr(storage, "write_partition", lake_down)
        with pytest.raises(OSError, match="lake unavailable"):
            lifecycle.register(spec, second["trained"], second["decision"], key, {})
    version = registry.find_version(NAME, key, run_id)
    assert version is not None and modelcard.CARD_TAG not in _version_tags(version)  # not tagged: no card
    retried = lifecycle.register(spec, second["trained"], second["decision"], key, {})
    assert not retried["created"] and retried["version"] == version
    assert [
        str(v.version)
        for v in registry.client().search_model_versions(f"name = '{NAME}'")
        if v.tags.get(registry.RUN_KEY_TAG) == key
    ] == [version]
    assert _version_tags(version)[modelcard.CARD_TAG] == retried["model_card_uri"].rsplit("/", 1)[0]
    assert "Model card: card_test v" in _card_text(retried["model_card_uri"])


VIOLATION = f"slice mean_radius={PIPES}: recall 0.5 below the floor 0.8"
STATS = [
    {
        "slice": "[0, 15)",
        "rows": 70,
        "judged": True,
        "metrics": {"recall": {"value": 0.81, "low": 0.7, "high": 0.9}},
        "champion": {"recall": 0.8},
        "note": None,
        "resamples": 100,
    },
    {
        "slice": CLOSE_SCRIPT,
        "rows": 3,
        "judged": False,
        "metrics": {"recall": {"value": 0.5, "low": None, "high": None}},
        "champion": {"recall": 0.4},
        "note": "too few rows",
        "resamples": 0,
    },
]


def _slice_report() -> dict[str, Any]:
    """The gate's slice report, built with the slices module's own classes (its real shape)."""
    from mlops_core.model.slice_report import MetricGap, SliceReport, SliceStat

    return SliceReport(
        metrics=["recall"],
        min_rows=30,
        small="report",
        confidence=0.9,
        n_resamples=100,
        overall={"recall": 0.8},
        columns={"mean_radius": [SliceStat(**s) for s in STATS]},  # type: ignore[arg-type]
        gaps={"mean_radius": {"recall": MetricGap("[0, 15)", 0.81, CLOSE_SCRIPT, 0.5, 0.31, 1, 0.2)}},
        champion_overall={"recall": 0.79},
        champion_version="1",
        violations=[VIOLATION],
        notes=["gap of recall within max_gap"],
    ).to_dict()


@pytest.mark.parametrize("shape", ["report", "bare"])
def test_slices_are_rendered_when_the_gate_decision_has_them_and_absent_otherwise(store, shape):
    spec, second = store["spec"], store["second"]
    version, run_id = second["registered"]["version"], second["trained"]["run_id"]
    plain = modelcard.build(spec, NAME, version)
    assert plain.slices is None and "## Slices" not in plain.markdown() and ">Slices<" not in plain.html()
    slices = _slice_report() if shape == "report" else {"mean_radius": STATS, "violations": [VIOLATION]}
    client = registry.client()
    client.log_dict(run_id, {**second["decision"], "slices": slices}, "gate_decision.json")
    try:
        card = modelcard.build(spec, NAME, version)
    finally:
        client.log_dict(run_id, second["decision"], "gate_decision.json")
    assert card.slices == slices
    text = card.markdown()
    assert "## Slices" in text and "**column mean_radius**" in text
    assert "| slice | rows | recall | champion recall | judged |" in text
    assert "| \\[0, 15) | 70 | 0.81 \\[0.7, 0.9\\] | 0.8 | yes |" in text
    assert "| \\</script\\>\\<script\\>alert(1)\\</script\\> | 3 | 0.5 | 0.4 | no (too few rows) |" in text
    assert "- violation: slice mean_radius=\\| x \\|: recall 0.5 below the floor 0.8" in text
    if shape == "report":
        assert "- **interval**: 0.9 bootstrap, 100 resamples" in text
        assert "- **overall (champion)**: recall: 0.79" in text
        gap = "| mean_radius | recall | \\[0, 15) (0.81) | \\</script\\>\\<script\\>alert(1)\\</script\\> (0.5) | 0.31 | 0.2 | not recorded |"
        assert gap in text and "- note: gap of recall within max_gap" in text
    page = _Page(card.html())
    page.assert_inert()
    assert CLOSE_SCRIPT in "".join(page.text) and VIOLATION in "".join(page.text)


def test_a_gate_with_slices_configured_puts_its_report_on_the_card(store):
    from mlops_core.base.html import markdown

    by_radius = [{"column": "mean_radius", "bins": [0, 12, 15, 40]}]
    spec = _spec("card_slices", slices={"columns": by_radius, "metrics": ["recall"], "min_rows": 10})
    raw = lifecycle.ingest(spec, DS, settings.lake_root())["uri"]
    registered = _train(spec, raw, "card/sliced")["registered"]
    card = modelcard.build(spec, spec.name, registered["version"])
    decision = json.loads(_artifact(registered["run_id"], "gate_decision.json"))
    assert card.slices == decision["slices"] and set(card.slices["columns"]) == {"mean_radius"}
    text = _card_text(registered["model_card_uri"])
    assert "## Slices" in text and "| slice | rows | positives | recall | judged |" in text
    assert "- **interval**: 0.9 Wilson score (recall)" in text
    for stat in card.slices["columns"]["mean_radius"]:
        assert f"| {markdown(stat['slice'])} | {stat['rows']} | {stat['positives']} | " in text


def test_approval_section_reads_the_version_tags(store):
    from mlops_core.spec import ApprovalSpec

    spec, first, second = store["spec"], store["first"], store["second"]
    v1, v2 = first["registered"]["version"], second["registered"]["version"]
    asked = spec.model_copy(
        update={
            "deployment": spec.deployment.model_copy(
                update={"approval": ApprovalSpec(assigned_users=["alice"])}
            )
        }
    )
    assert modelcard.build(spec, NAME, v1).approval["status"] == "not required"
    assert modelcard.build(asked, NAME, v1).approval["status"] == "pending"
    assert modelcard.build(asked, NAME, v2).approval["status"] == "not asked (the gate rejected this version)"
    decision = {
        modelcard.APPROVAL_TAG: "approved",
        modelcard.APPROVED_BY_TAG: "alice",
        modelcard.APPROVED_AT_TAG: "2026-02-01T10:00:00+00:00",
        modelcard.APPROVAL_COMMENT_TAG: f"ok {JS_LINK}",
    }
    client = registry.client()
    registry.set_tags(NAME, v1, decision)
    try:
        published = modelcard.publish(asked, v1)  # what the approval step calls after a decision
        card = modelcard.build(asked, NAME, v1)
    finally:
        for key in decision:
            client.delete_model_version_tag(NAME, v1, key)
    assert card.approval == {
        "status": "approved",
        "by": "alice",
        "at": "2026-02-01T10:00:00+00:00",
        "comment": f"ok {JS_LINK}",
        "assigned_users": ["alice"],
        "shadow": None,  # no shadow verdict on this version (deployment.shadow: test_shadow_flow.py)
    }
    text = _card_text(published["markdown_uri"])
    assert "- **status**: approved" in text and "- **by**: alice" in text
    assert "- **comment**: ok \\[a\\](javascript:alert(1))" in text
    assert _version_tags(v1)[modelcard.CARD_VERSION_TAG] == str(published["manifest_version"])


def test_registry_and_artifact_store_errors_fail_closed(store, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    spec, second = store["spec"], store["second"]
    version = second["registered"]["version"]
    with pytest.raises(modelcard.ModelCardError, match="has no version 999"):
        modelcard.build(spec, NAME, "999")
    folder = second["registered"]["model_card_uri"].rsplit("/", 1)[0]
    before = storage.read_manifest(folder).version

    class Locked:
        def __getattr__(self, name: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                raise MlflowException("database is locked", error_code="TEMPORARILY_UNAVAILABLE")

            return call

    with monkeypatch.context() as mp:
        mp.setattr(registry, "client", Locked)
        with pytest.raises(registry.RegistryUnavailable, match="database is locked"):
            modelcard.publish(spec, version)

    def store_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("artifact store refused the connection")

    with monkeypatch.context() as mp:
        mp.setattr(mlflow.artifacts, "load_text", store_down)
        with pytest.raises(registry.RegistryUnavailable, match="training run"):
            modelcard.publish(spec, version)
    assert storage.read_manifest(folder).version == before  # nothing was written
