"""Render the pipeline YAML reference (docs/reference.md) from the published JSON Schema.

The reference is never kept by hand: ``include/schema/pipeline.schema.json`` (itself checked
against the spec by ``mlops-airflow schema --check``) is the only source. Every property is a
row of its object's table (type, default, bounds or allowed values, description); every nested
object gets a section of its own, named by its path in the YAML (``evaluation.bootstrap``).

    python docs/gen_reference.py            # write docs/reference.md
    python docs/gen_reference.py --check    # exit 1 if docs/reference.md is not what the schema renders

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "include" / "schema" / "pipeline.schema.json"
OUTPUT = ROOT / "docs" / "reference.md"

Schema = dict[str, Any]


class Renderer:
    """Walks the schema from the top-level object, one section per object path."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.defs: dict[str, Schema] = schema.get("$defs", {})
        self.sections: list[str] = []
        self.rendered: set[str] = set()

    # --- schema helpers ------------------------------------------------------------------------

    def resolve(self, node: Schema) -> Schema:
        ref = node.get("$ref")
        if ref is None:
            return node
        prefix = "#/$defs/"
        if not ref.startswith(prefix):
            raise ValueError(f"unsupported $ref {ref!r}")
        return self.defs[ref[len(prefix) :]]

    def variants(self, node: Schema) -> list[Schema]:
        """The alternatives of a node (anyOf/oneOf), or the node itself."""
        alternatives = node.get("anyOf") or node.get("oneOf")
        return list(alternatives) if alternatives else [node]

    def object_variants(self, node: Schema) -> list[Schema]:
        """The object schemas (with properties) a node may be, directly or as array items."""
        found = []
        for variant in self.variants(node):
            target = self.resolve(variant)
            if "anyOf" in target or "oneOf" in target:
                found += [self.resolve(v) for v in self.variants(target) if "properties" in self.resolve(v)]
            elif "properties" in target:
                found.append(target)
        return found

    def item_objects(self, node: Schema) -> list[Schema]:
        found = []
        for variant in self.variants(node):
            if variant.get("type") == "array" and "items" in variant:
                found += self.object_variants(variant["items"])
        return found

    def value_objects(self, node: Schema) -> list[Schema]:
        """The object schemas of a map's values (``additionalProperties``)."""
        found = []
        for variant in self.variants(node):
            extra = variant.get("additionalProperties")
            if variant.get("type") == "object" and isinstance(extra, dict):
                found += self.object_variants(extra)
        return found

    # --- cells ---------------------------------------------------------------------------------

    def type_of(self, node: Schema, path: str) -> str:
        parts = []
        for variant in self.variants(node):
            parts.append(self.single_type(variant, path))
        return " or ".join(dict.fromkeys(parts))

    def single_type(self, node: Schema, path: str) -> str:
        if "$ref" in node:
            target = self.resolve(node)
            if "properties" in target:
                return f"[object](#{anchor(path)})"
            return self.type_of(target, path)
        if "anyOf" in node or "oneOf" in node:
            return self.type_of(node, path)
        kind = node.get("type")
        if kind == "array":
            return self.list_type(node, path)
        if kind == "object":
            return self.object_type(node, path)
        if isinstance(kind, list):
            return " or ".join(str(k) for k in kind)
        if kind is None:
            return "enum" if "enum" in node else "constant" if "const" in node else "any"
        return str(kind)

    def list_type(self, node: Schema, path: str) -> str:
        items = node.get("items")
        if items is None:
            return "list"
        inner = self.type_of(items, path + "[]")
        return f"list of ({inner})" if " or " in inner else f"list of {inner}"

    def object_type(self, node: Schema, path: str) -> str:
        if "properties" in node:
            return f"[object](#{anchor(path)})"
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map of name to {self.type_of(extra, path + '.*')}"
        return "mapping"

    def rules(self, node: Schema) -> str:
        """Bounds, lengths, patterns and allowed values of a node and its alternatives."""
        out: list[str] = []
        for variant in self.variants(node):
            target = self.resolve(variant) if "$ref" in variant else variant
            out += constraints(target)
            if target.get("type") == "array" and isinstance(target.get("items"), dict):
                items = target["items"]
                for item in self.variants(items):
                    if "$ref" not in item:
                        out += [f"each: {c}" for c in constraints(item)]
            extra = target.get("additionalProperties")
            if target.get("type") == "object" and isinstance(extra, dict):
                for item in self.variants(extra):
                    out += [f"each value: {c}" for c in constraints(item)]
        return "; ".join(dict.fromkeys(out))

    def default_of(self, node: Schema, has_section: bool) -> str:
        if "default" not in node:
            return ""
        value = node["default"]
        if has_section and isinstance(value, dict) and value:
            return "see its section"
        return code(json.dumps(value, ensure_ascii=False, sort_keys=True))

    def description_of(self, node: Schema) -> str:
        if node.get("description"):
            return node["description"]
        for variant in self.variants(node):
            target = self.resolve(variant)
            if target.get("description"):
                return first_paragraph(target["description"])
        return ""

    # --- sections ------------------------------------------------------------------------------

    def container(self, prop: Schema, key: str) -> Schema | None:
        """The items (or map values) schema of a list (or map) property, resolved."""
        for variant in self.variants(prop):
            inner = variant.get(key)
            if isinstance(inner, dict):
                return self.resolve(inner)
        return None

    def render_object(self, path: str, node: Schema, wrapper: Schema | None = None) -> None:
        heading = f"`{path.replace('.*', '.<name>')}`" if path else "Top level"
        lines = [f"## {heading} {{#{anchor(path)}}}", ""]
        if (
            wrapper is not None
            and wrapper.get("description")
            and wrapper["description"] != node.get("description")
        ):
            lines += [md_text(wrapper["description"]), ""]
        if node.get("description"):
            lines += [md_text(node["description"]), ""]
        if wrapper is not None:
            others = [v for v in self.variants(wrapper) if "properties" not in self.resolve(v)]
            for other in others:
                kind = self.single_type(self.resolve(other), path)
                rules = "; ".join(constraints(self.resolve(other)))
                lines += [f"Also accepted in its place: {kind}" + (f" ({rules})." if rules else "."), ""]
            if others:
                lines += ["The object form:", ""]
        required = set(node.get("required", []))
        children: list[tuple[str, Schema, Schema | None]] = []
        lines += [
            "| field | type | default | bounds / allowed | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, prop in sorted(node.get("properties", {}).items()):
            child = f"{path}.{name}" if path else name
            objects = self.object_variants(prop)
            children += [(child, obj, None) for obj in objects]
            children += [
                (child + "[]", obj, self.container(prop, "items")) for obj in self.item_objects(prop)
            ]
            children += [
                (child + ".*", obj, self.container(prop, "additionalProperties"))
                for obj in self.value_objects(prop)
            ]
            field = f"`{name}`" + (" (required)" if name in required else "")
            row = [
                field,
                self.type_of(prop, child),
                self.default_of(prop, bool(objects)),
                self.rules(prop),
                self.description_of(prop),
            ]
            lines.append("| " + " | ".join(cell(c) for c in row) + " |")
        self.sections.append("\n".join(lines))
        for child_path, child_node, wrapper in children:
            if child_path in self.rendered:
                raise ValueError(
                    f"{child_path}: more than one object form; the renderer cannot name them apart"
                )
            self.rendered.add(child_path)
            self.render_object(child_path, child_node, wrapper)

    def render(self) -> str:
        head = [
            "# YAML reference",
            "",
            "<!-- Generated by docs/gen_reference.py from include/schema/pipeline.schema.json:"
            " do not edit by hand. -->",
            "",
            f"Every field of a pipeline YAML, rendered from the published JSON Schema "
            f"(`include/schema/pipeline.schema.json`, {code(self.schema.get('$schema', ''))}). "
            "Unknown keys are errors. Rules across fields (a metric valid for the problem type, an "
            "estimator's params and their bounds) are checked by `mlops-airflow validate`, not by the "
            "schema: see [the pipeline YAML](yaml.md) for the annotated example and "
            "[adding an estimator](estimators.md) for the params each family allows.",
            "",
        ]
        self.render_object("", self.schema)
        return "\n".join(head) + "\n" + "\n\n".join(self.sections) + "\n"


# --- text helpers ----------------------------------------------------------------------------


def constraints(node: Schema) -> list[str]:
    out = []
    if "enum" in node:
        out.append("one of " + ", ".join(code(json.dumps(v, ensure_ascii=False)) for v in node["enum"]))
    if "const" in node:
        out.append("exactly " + code(json.dumps(node["const"], ensure_ascii=False)))
    for key, word in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            out.append(f"{word} {number(node[key])}")
    for key, word in (
        ("minLength", "length >="),
        ("maxLength", "length <="),
        ("minItems", "items >="),
        ("maxItems", "items <="),
        ("minProperties", "entries >="),
        ("maxProperties", "entries <="),
    ):
        if key in node:
            out.append(f"{word} {node[key]}")
    if "pattern" in node:
        out.append("pattern " + code(node["pattern"]))
    if "format" in node:
        out.append(f"format {node['format']}")
    names = node.get("propertyNames")
    if isinstance(names, dict):
        out += [f"names: {c}" for c in constraints(names)]
    return out


def number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0]


def md_text(text: str) -> str:
    """A docstring-style description as Markdown: paragraphs kept, lines joined."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


def cell(text: str) -> str:
    """One table cell: on one line; a pipe is escaped outside code spans (Python-Markdown's table
    splitter leaves pipes inside backticks alone, and would print an escaped one as ``\\|``)."""
    parts = re.split(r"(`+[^`]*`+)", " ".join(text.split()))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def anchor(path: str) -> str:
    if not path:
        return "top-level"
    return "ref-" + path.replace("[]", "-items").replace(".", "-").replace("_", "-").replace("*", "x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/reference.md is out of date")
    args = parser.parse_args(argv)
    text = Renderer(json.loads(SCHEMA.read_text(encoding="utf-8"))).render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current == text:
            print(f"{OUTPUT.relative_to(ROOT)} matches {SCHEMA.relative_to(ROOT)}")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(),
            text.splitlines(),
            "docs/reference.md",
            "rendered from the schema",
            lineterm="",
        )
        print("\n".join(list(diff)[:40]), file=sys.stderr)
        print(
            f"{OUTPUT.relative_to(ROOT)} differs from what {SCHEMA.relative_to(ROOT)} renders: "
            "run python docs/gen_reference.py",
            file=sys.stderr,
        )
        return 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
