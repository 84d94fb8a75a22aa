"""The model card as a document: its fields (:class:`ModelCard`) and its two renderings.

:meth:`ModelCard.markdown` and :meth:`ModelCard.html` lay the card out as one neutral structure
(sections of fields, tables and items) and write it as Markdown (CommonMark + GFM tables) or as a
standalone page that allows no script. Every value comes from the YAML, the run or the data, so
every value is escaped: through :func:`mlops_core.base.html.escape_line` in the page,
:func:`mlops_core.base.html.markdown` in the Markdown. :func:`mlops_core.model.modelcard.build`
fills the card from the registry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_CATEGORIES_SHOWN = 10
CELL_LIMIT = 2000  # characters of one value (a description, a reason) before it is cut
NOT_RECORDED = "not recorded"


def json_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else empty (artifacts are data, not trusted to be well formed)."""
    return value if isinstance(value, dict) else {}


@dataclass
class ModelCard:
    """One registered version's card; every field is JSON-able and rendered by :meth:`markdown` / :meth:`html`."""

    name: str
    version: str
    run_id: str | None
    intended_use: dict[str, Any]
    data: dict[str, Any]
    features: dict[str, list[str]] | None
    contract: dict[str, Any] | None
    metrics: dict[str, Any]
    gate: dict[str, Any]
    approval: dict[str, Any]
    lineage: dict[str, Any]
    slices: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Model card: {self.name} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def markdown(self) -> str:
        """The card as Markdown (CommonMark + GFM tables); every value through :func:`mlops_core.base.html.markdown`."""
        return _render_markdown(self.title, _sections(self))

    def html(self) -> str:
        """The card as a standalone page that allows no script (:data:`mlops_core.base.html.CSP_NO_SCRIPT`)."""
        return _render_html(self.title, _sections(self))


# rendering: one neutral structure, two writers


@dataclass
class _Table:
    caption: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class _Section:
    title: str
    fields: list[tuple[str, Any]] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


def _show(value: Any) -> str:
    """A value as text: numbers to 6 significant digits, lists joined, missing as "not recorded"."""
    if value is None or value == "":
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) if value else "none"
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > CELL_LIMIT:
        text = text[:CELL_LIMIT] + f"... ({len(text) - CELL_LIMIT} more characters)"
    return text


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {_show(v)}" for k, v in values.items())


def _interval(entry: Any) -> str:
    if not isinstance(entry, dict):
        return _show(entry)
    text = _show(entry.get("value"))
    if entry.get("low") is not None or entry.get("high") is not None:
        text += f" [{_show(entry.get('low'))}, {_show(entry.get('high'))}]"
    return text


def _categories(row: dict[str, Any]) -> str:
    if row["kind"] == "numeric":
        return f"range [{_show(row['min'])}, {_show(row['max'])}]"
    cats = row["categories"]
    if cats is None:
        return f"{_show(row['n_categories'])} categories (too many to record)"
    shown = ", ".join(cats[:MAX_CATEGORIES_SHOWN])
    more = f" ... ({len(cats) - MAX_CATEGORIES_SHOWN} more)" if len(cats) > MAX_CATEGORIES_SHOWN else ""
    return f"{len(cats)} categories: {shown}{more}"


def _data_section(card: ModelCard) -> _Section:
    d = card.data
    sec = _Section("Data and its contract")
    sec.fields = [
        ("source", d["source_uri"]),
        ("partition mode", d["partition_mode"]),
        ("training day", d["training_day"]),
        ("rows (train / holdout)", f"{_show(d['rows_train'])} / {_show(d['rows_holdout'])}"),
        ("rows in the raw partition", d["rows_raw"]),
    ]
    sec.tables.append(
        _Table(
            "Lake partitions (the exact manifest versions trained and evaluated on)",
            ["partition", "uri", "manifest version", "sha256", "check"],
            [
                [p, d[f"{p}_uri"], d[f"{p}_manifest_version"], d[f"{p}_sha256"], d[f"{p}_check"]]
                for p in ("raw", "holdout")
            ],
        )
    )
    if card.features is not None:
        sec.fields += [(f"{k} features", v) for k, v in card.features.items()]
    if card.contract is not None:
        sec.tables.append(
            _Table(
                f"Learned data contract ({_show(card.contract['rows'])} rows)",
                ["column", "role", "kind", "dtype", "null share", "range or categories"],
                [
                    [r["column"], r["role"], r["kind"], r["dtype"], r["null_share"], _categories(r)]
                    for r in card.contract["columns"]
                ],
            )
        )
    return sec


def _metrics_section(card: ModelCard) -> _Section:
    m = card.metrics
    sec = _Section("Metrics on the holdout")
    champ = m["champion"] or {}
    header = ["metric", "challenger"] + ([f"champion v{_show(m['champion_version'])}"] if champ else [])
    rows = [[k, v] + ([champ.get(k)] if champ else []) for k, v in m["challenger"].items()]
    sec.tables.append(_Table("Holdout metrics (the same rows for both)", header, rows))
    imp = m["improvement"]
    if imp is not None:
        sec.fields.append(
            (
                f"improvement in {imp['metric']} (paired bootstrap)",
                f"{_show(imp['delta'])} [{_show(imp['low'])}, {_show(imp['high'])}] at confidence "
                f"{_show(imp['confidence'])}, {_show(imp['n_resamples'])} resamples",
            )
        )
    elif m["champion_version"] is None:
        sec.fields.append(("improvement over the champion", "not compared: no champion yet (floors only)"))
    else:
        sec.fields.append(
            ("improvement over the champion", "not compared: the champion could not score the holdout")
        )
    sec.fields += [("primary metric", m["primary_metric"]), ("decision threshold", m["threshold"])]
    return sec


def _slice_table(column: str, listed: Any) -> _Table:
    """One column's slices: rows, each metric as value [low, high], the champion's value, judged."""
    entries = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
    scores = [json_object(e.get("metrics")) for e in entries]
    champs = [json_object(e.get("champion")) for e in entries]
    names = list(dict.fromkeys(k for sc in scores for k in sc))
    with_champ = [n for n in names if any(n in c for c in champs)]
    counted = any(e.get("positives") is not None for e in entries)  # binary: positive rows per slice
    rows = [
        [e.get("slice"), e.get("rows")]
        + ([e.get("positives")] if counted else [])
        + [_interval(sc.get(n)) for n in names]
        + [ch.get(n) for n in with_champ]
        + [_show(e.get("judged")) + (f" ({_show(e['note'])})" if e.get("note") else "")]
        for e, sc, ch in zip(entries, scores, champs, strict=True)
    ]
    header = ["slice", "rows", *(["positives"] if counted else []), *names]
    header += [*[f"champion {n}" for n in with_champ], "judged"]
    return _Table(f"column {column}", header, rows)


def _gap_row(column: str, metric: str, g: dict[str, Any]) -> list[Any]:
    best = f"{_show(g.get('best'))} ({_show(g.get('best_value'))})"
    worst = f"{_show(g.get('worst'))} ({_show(g.get('worst_value'))})"
    return [column, metric, best, worst, g.get("gap"), g.get("max_gap"), g.get("champion_gap")]


def _gap_table(gaps: dict[str, Any]) -> _Table:
    rows = [
        _gap_row(column, metric, json_object(found))
        for column, per in gaps.items()
        for metric, found in json_object(per).items()
    ]
    return _Table(
        "Gap between the best and the worst judged slice",
        ["column", "metric", "best", "worst", "gap", "max gap", "champion gap"],
        rows,
    )


def _interval_kinds(slices: dict[str, Any]) -> str:
    """Which interval each slice metric has: Wilson for proportions, the bootstrap otherwise."""
    boot = f"{_show(slices.get('confidence'))} bootstrap, {_show(slices.get('n_resamples'))} resamples"
    methods = json_object(slices.get("interval_methods"))
    wilson = [str(m) for m, kind in methods.items() if kind == "wilson"]
    if not wilson:
        return boot
    text = f"{_show(slices.get('confidence'))} Wilson score ({', '.join(wilson)})"
    return text + (f"; {boot} (the others)" if len(wilson) < len(methods) else "")


def _slices_section(slices: dict[str, Any]) -> _Section:
    """The gate's slice report (:class:`mlops_core.model.slice_report.SliceReport`): per column a table of
    slices, the gaps, then the violations and notes. A bare ``{column: [slices], violations}``
    renders too."""
    sec = _Section("Slices")
    report = isinstance(slices.get("columns"), dict)
    columns = (
        json_object(slices["columns"]) if report else {k: v for k, v in slices.items() if k != "violations"}
    )
    if report:
        sec.fields = [
            ("metrics", slices.get("metrics")),
            ("min rows to judge a slice", slices.get("min_rows")),
            ("smaller slices", slices.get("small")),
            ("min positive rows to judge recall, precision...", slices.get("min_positives")),
            ("interval", _interval_kinds(slices)),
            ("overall (challenger)", _pairs(json_object(slices.get("overall")))),
            ("overall (champion)", _pairs(json_object(slices.get("champion_overall"))) or None),
        ]
    sec.tables = [_slice_table(str(c), listed) for c, listed in columns.items()]
    if json_object(slices.get("gaps")):
        sec.tables.append(_gap_table(json_object(slices.get("gaps"))))
    violations, notes = slices.get("violations"), slices.get("notes")
    sec.items = (
        [f"violation: {v}" for v in violations]
        if isinstance(violations, list) and violations
        else ["no violations"]
    )
    sec.items += [f"note: {n}" for n in notes] if isinstance(notes, list) else []
    return sec


def _gate_section(card: ModelCard) -> _Section:
    g = card.gate
    sec = _Section("Gate")
    sec.fields = [
        ("outcome", g["outcome"]),
        ("evaluated against", g["evaluated_against"]),
        ("floors", _pairs(g["floors"]) or "none"),
        ("min improvement", g["min_improvement"]),
    ]
    if g["forced_by"] or g["force_reason"]:
        sec.fields += [("forced by", g["forced_by"]), ("force reason", g["force_reason"])]
    sec.items = g["reasons"] or [NOT_RECORDED]
    changes = g.get("contract_changes")
    if changes is not None:
        sec.fields.append(("data contract since the champion", changes["note"]))
        sec.tables.append(
            _Table(
                f"What changed in the data since champion v{_show(changes['against'])} (evidence, not a verdict)",
                ["column", "change", "what"],
                changes["rows"] or [["", "none", "no change"]],
            )
        )
    return sec


def _sections(card: ModelCard) -> list[_Section]:
    use = card.intended_use
    a = card.approval
    sections = [
        _Section("Intended use", fields=[(k.replace("_", " "), v) for k, v in use.items()]),
        _data_section(card),
        _metrics_section(card),
    ]
    if card.slices is not None:
        sections.append(_slices_section(card.slices))
    sections += [
        _gate_section(card),
        _Section(
            "Approval",
            fields=[("status", a["status"]), ("by", a["by"]), ("at", a["at"]), ("comment", a["comment"])]
            + ([("assigned users", a["assigned_users"])] if a["assigned_users"] else [])
            + ([("shadow verdict", a["shadow"])] if a.get("shadow") else []),
        ),
        _Section("Lineage", fields=list(card.lineage.items())),
    ]
    if card.notes:
        sections.append(_Section("Notes", items=card.notes))
    return sections


def _render_markdown(title: str, sections: list[_Section]) -> str:
    from mlops_core.base.html import markdown as md

    out = [f"# {md(title)}", ""]
    for sec in sections:
        out += [f"## {md(sec.title)}", ""]
        out += [f"- **{md(label)}**: {md(_show(value))}" for label, value in sec.fields]
        for table in sec.tables:
            out += ["", f"**{md(table.caption)}**", ""]
            out.append("| " + " | ".join(md(h) for h in table.header) + " |")
            out.append("|" + "---|" * len(table.header))
            out += ["| " + " | ".join(md(_show(v)) for v in row) + " |" for row in table.rows]
            if not table.rows:
                out.append("| " + " | ".join([md("none")] * len(table.header)) + " |")
        if sec.items:
            out += ([""] if sec.fields or sec.tables else []) + [f"- {md(_show(i))}" for i in sec.items]
        out.append("")
    return "\n".join(out)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 80rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; } td, th { border: 1px solid #ccc; padding: .3rem .5rem; }
th { background: #f3f3f3; text-align: left; } td { vertical-align: top; word-break: break-word; }
dt { font-weight: bold; } dd { margin: 0 0 .4rem 1rem; white-space: pre-wrap; word-break: break-word; }
"""


def _render_html(title: str, sections: list[_Section]) -> str:
    from mlops_core.base.html import document
    from mlops_core.base.html import escape_line as h

    body = [f"<h1>{h(title)}</h1>"]
    for sec in sections:
        body.append(f"<section>\n<h2>{h(sec.title)}</h2>")
        if sec.fields:
            body.append(
                "<dl>" + "".join(f"<dt>{h(k)}</dt><dd>{h(_show(v))}</dd>" for k, v in sec.fields) + "</dl>"
            )
        for table in sec.tables:
            head = "".join(f"<th>{h(c)}</th>" for c in table.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{h(_show(v))}</td>" for v in r) + "</tr>\n" for r in table.rows
            )
            body.append(f"<table><caption>{h(table.caption)}</caption>\n<tr>{head}</tr>\n{rows}</table>")
        if sec.items:
            body.append("<ul>" + "".join(f"<li>{h(_show(i))}</li>" for i in sec.items) + "</ul>")
        body.append("</section>")
    return document(title, "\n".join(body), style=_STYLE)
