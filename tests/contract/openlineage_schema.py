"""OpenLineage's JSON Schema (spec 2-0-2, the version openlineage-python 1.54 writes), as a
consumer (Marquez, a catalog) applies it to what the provider sends.

Vendored in ``schemas/openlineage_2-0-2.json``, the one standard facet the package adds,
``schemas/openlineage_DatasetVersionDatasetFacet_1-0-1.json``, and the provider's error facet on a
FAIL, ``schemas/openlineage_ErrorMessageRunFacet_1-0-1.json`` (each file's ``_source`` names the
OpenLineage commit; none ships in the Python client). An event is checked against
``RunEvent``, and every facet in it whose ``_schemaURL`` is one of the vendored schemas against
that schema too (the provider's Airflow facets have schemas of their own, not vendored here).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).with_name("schemas")
FILES = (
    "openlineage_2-0-2.json",
    "openlineage_DatasetVersionDatasetFacet_1-0-1.json",
    "openlineage_ErrorMessageRunFacet_1-0-1.json",
)
RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource

    resources = []
    for name in FILES:
        doc = json.loads((SCHEMAS / name).read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _validator(ref: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator({"$ref": ref}, registry=_registry(), format_checker=FormatChecker())


def _facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = list((event.get("run") or {}).get("facets", {}).values())
    found += list((event.get("job") or {}).get("facets", {}).values())
    for dataset in [*(event.get("inputs") or []), *(event.get("outputs") or [])]:
        found += list((dataset.get("facets") or {}).values())
        found += list((dataset.get("inputFacets") or dataset.get("outputFacets") or {}).values())
    return [f for f in found if isinstance(f, dict)]


def violations(event: dict[str, Any]) -> list[str]:
    """What in ``event`` breaks the schema (empty: valid); a facet is checked against its own
    schema when that schema is vendored."""
    known = {json.loads((SCHEMAS / n).read_text())["$id"] for n in FILES}
    errors = [
        f"RunEvent: {e.message} at {list(e.absolute_path)}" for e in _validator(RUN_EVENT).iter_errors(event)
    ]
    for facet in _facets(event):
        url = str(facet.get("_schemaURL", ""))
        if url.split("#", 1)[0] in known:
            errors += [f"{url}: {e.message}" for e in _validator(url).iter_errors(facet)]
    return errors


def checked_facets(event: dict[str, Any]) -> list[str]:
    """The ``_schemaURL`` of every facet of ``event`` that :func:`violations` checked."""
    known = {json.loads((SCHEMAS / n).read_text())["$id"] for n in FILES}
    return [
        str(f["_schemaURL"]) for f in _facets(event) if str(f.get("_schemaURL", "")).split("#", 1)[0] in known
    ]
