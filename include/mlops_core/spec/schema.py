"""The pipeline spec as a JSON Schema, for editors and for CI checks outside Python.

Generated from :class:`mlops_core.spec.PipelineSpec` (pydantic), then completed where the YAML has
a short form pydantic normalises before validating (``- expect_x: {column: c}``, a slice column as
a bare name) and where a field's allowed values come from an allow-list (expectation types,
estimator families). The published copy, ``include/schema/pipeline.schema.json``, is what a
``# yaml-language-server: $schema=...`` line points at; ``tests/unit/test_cli.py`` checks it equals
what this module generates. The schema is a help for editors: rules that span fields (a metric
valid for the problem type, an estimator's params) are checked by ``mlops-airflow validate`` only.
"""

from __future__ import annotations

import json
from typing import Any

from mlops_core.spec import PipelineSpec
from mlops_core.spec.catalog import EXPECTATIONS
from mlops_core.spec.estimators import families

SCHEMA_ID = (
    "https://raw.githubusercontent.com/airflow-mlops/airflow-mlops/main/include/schema/pipeline.schema.json"
)
PUBLISHED = "include/schema/pipeline.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one pipeline YAML."""
    schema = PipelineSpec.model_json_schema()
    defs = schema["$defs"]
    kinds = sorted(EXPECTATIONS)
    long_form = defs["ExpectationSpec"]
    long_form["properties"]["type"]["enum"] = kinds
    defs["ExpectationSpec"] = {
        "description": long_form.get("description", ""),
        "anyOf": [
            {k: v for k, v in long_form.items() if k != "description"},
            {
                "title": "ExpectationShortForm",
                "description": "- expect_column_values_to_not_be_null: {column: x}",
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "propertyNames": {"enum": kinds},
                "additionalProperties": {"anyOf": [{"type": "object"}, {"type": "null"}]},
            },
        ],
    }
    column = defs["SliceColumn"]
    defs["SliceColumn"] = {
        "description": column.get("description", ""),
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": 128}, column],
    }
    defs["ModelSpec"]["properties"]["family"]["enum"] = families()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "airflow-mlops pipeline",
    }


def dumps() -> str:
    """The schema as the published file holds it (sorted keys, two-space indent, final newline)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
