"""Print ``name==floor`` for every dependency pyproject.toml declares with a ``>=`` floor.

``make test-lower-bounds`` installs with these as constraints (and uv's ``--resolution
lowest-direct``), so each dependency is at the oldest version the package allows, not merely the
oldest a resolver happened to reach. A declared floor the others cannot live with fails there.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared.extend(extra)
    pins: dict[str, str] = {}
    for line in declared:
        req = Requirement(line)
        if req.name == project["name"]:
            continue  # the `all` extra names the package's own extras
        for spec in req.specifier:
            if spec.operator == ">=":
                pins[req.name.lower()] = spec.version
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    print("\n".join(floors(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
