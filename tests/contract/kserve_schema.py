"""The InferenceService CRD's ``openAPIV3Schema`` (KServe v0.20.0, v1beta1), as the API server applies it.

Vendored in ``schemas/kserve_v0.20.0_inferenceservice_v1beta1.json`` (its ``_source`` names the
release, the commit and the file; descriptions removed). The Kubernetes API server prunes a field
the structural schema does not declare (or, with ``fieldValidation=Strict``, refuses it): either
way a misspelt field never reaches KServe. So here an undeclared field is an error, as are a
wrong type, a missing required field or a value outside an enum.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("schemas") / "kserve_v0.20.0_inferenceservice_v1beta1.json"


def _structural(node: Any, *, partial: bool) -> Any:
    """The CRD schema as JSON Schema: undeclared fields refused, int-or-string and nullable spelt
    out; ``partial`` (a merge patch) drops ``required``."""
    if isinstance(node, list):
        return [_structural(n, partial=partial) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _structural(v, partial=partial) for k, v in node.items() if not (partial and k == "required")}
    if out.pop("x-kubernetes-int-or-string", False):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def _validator(partial: bool) -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())["openAPIV3Schema"]
    return jsonschema.Draft7Validator(_structural(schema, partial=partial))


def _without_nulls(value: Any) -> Any:
    """A merge patch's ``null`` deletes the field: nothing to validate there."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def errors(body: Any, *, patch: bool = False) -> list[str]:
    """Where ``body`` (a whole InferenceService, or a merge patch of one) breaks the CRD's schema."""
    validator = _validator(patch)
    found = validator.iter_errors(_without_nulls(body) if patch else body)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found)
