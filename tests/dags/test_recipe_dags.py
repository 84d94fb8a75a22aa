"""Each platform recipe's dags/ folder loads in a DagBag with this repository's code.

The folder a user copies to MWAA's bucket, Composer's bucket, an Astro project, the image or the
git-synced repository holds only the loader DAG and one pipeline YAML (plus data files such as
the cloud profiles). Parsed in a fresh interpreter, one per recipe folder, like the dag-processor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.dags

RECIPES = REPO / "recipes"
FOLDERS = {
    "mwaa": RECIPES / "mwaa" / "dags",
    "composer": RECIPES / "composer" / "dags",
    "astro": RECIPES / "astro" / "dags",
    "docker": RECIPES / "docker" / "dags",
    "helm": RECIPES / "helm" / "dags",
}
EXPECTED = {"breast_cancer_training", "breast_cancer_batch_scoring", "breast_cancer_monitoring"}

PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
out = {}
for name, folder in json.loads(sys.argv[1]).items():
    bag = DagBag(dag_folder=folder)
    out[name] = {"dags": sorted(bag.dag_ids), "errors": bag.import_errors,
                 "files": sorted(str(s.file) for s in bag.dagbag_stats)}
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def bags() -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # The profiles file is read when a task runs, never at parse: prove it by pointing nowhere.
    env["MLOPS_CLOUDS_FILE"] = str(REPO / "does-not-exist.yaml")
    folders = {name: str(path) for name, path in FOLDERS.items()}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(folders)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


@pytest.mark.parametrize("recipe", sorted(FOLDERS))
def test_recipe_dags_load_without_import_errors(bags, recipe):
    assert bags[recipe]["errors"] == {}


@pytest.mark.parametrize("recipe", sorted(FOLDERS))
def test_recipe_dags_are_the_pipeline_ones(bags, recipe):
    assert set(bags[recipe]["dags"]) == EXPECTED


@pytest.mark.parametrize("recipe", sorted(FOLDERS))
def test_only_the_loader_is_parsed(bags, recipe):
    """The profiles, constraints and YAML files next to the loader are data, not DAG files."""
    assert [f.rsplit("/", 1)[-1] for f in bags[recipe]["files"]] == ["mlops_pipelines.py"]
