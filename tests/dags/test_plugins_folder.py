"""Airflow's plugin loader must not re-import the package's modules from the plugins folder.

Every Airflow process that loads plugins (the api-server, the scheduler, each task's runner for
its macros) execs every ``.py`` file under ``[core] plugins_folder`` as a top-level module. For
``plugins/mlops_airflow`` that meant a second copy of each module under a bare name
(``operators``, ``demo``...) in every task, and ``warm`` would import every heavy library there.
``plugins/.airflowignore`` keeps the loader out of the package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.dags

PROBE = """
import json, sys
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
stems = {p.stem for p in __import__("pathlib").Path(sys.argv[1]).rglob("*.py")} - {"__main__"}
heavy = ("pandas", "sklearn", "mlflow", "great_expectations", "evidently", "dvc")
print("RESULT" + json.dumps({
    "bare": sorted(m for m in sys.modules if m in stems),
    "heavy": [m for m in heavy if m in sys.modules],
    "plugins": sorted(p.name for p in plugins_manager._get_plugins()[0]),
    "view_built": "mlops_airflow.views.models" in sys.modules,
}))
"""


def test_loading_plugins_imports_no_module_of_the_package_twice_and_nothing_heavy(tmp_path):
    folder = REPO / "plugins"
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(folder), "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder / "mlops_airflow")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.split("RESULT", 1)[1])
    # the package's own plugin (the "Models" view) comes through its entry point, and loading it
    # builds nothing: the FastAPI app is made when the api-server first asks for it
    assert "mlops" in result.pop("plugins")
    assert result == {"bare": [], "heavy": [], "view_built": False}
