"""The platform recipes (recipes/): each file parses as the platform reads it, names this package.

What a platform reads is checked here without the platform (no Docker engine, Helm, MWAA,
Composer or Astro on this machine): requirement files line by line as pip reads them, the
Composer package list in the PEP 508 form gcloud accepts, the startup script with bash, the
Dockerfiles instruction by instruction, the Helm values against the chart's own JSON schema.
That each recipe's dags/ folder loads in a DagBag is tests/dags/test_recipe_dags.py.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from typing import TYPE_CHECKING

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import REPO

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

RECIPES = REPO / "recipes"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
HELM_SCHEMA = RECIPES / "helm" / "chart-1.22.0-values.schema.json"
MWAA_CONSTRAINTS = RECIPES / "mwaa" / "dags" / "mlops" / "constraints-3.3.1-py3.12-mlops.txt"

# pip options a requirements file may carry in these recipes (what MWAA's pip reads).
PIP_OPTIONS = {"--constraint", "-c", "--find-links", "--no-index"}


# ---------------------------------------------------------------- helpers


def requirement_lines(path: Path) -> tuple[list[Requirement], list[list[str]]]:
    """``(requirements, option lines)`` of a pip requirements file; a line pip would refuse fails."""
    reqs: list[Requirement] = []
    options: list[list[str]] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            words = shlex.split(line)
            assert words[0] in PIP_OPTIONS, f"{path}: unexpected pip option {line!r}"
            options.append(words)
        else:
            reqs.append(Requirement(line))
    return reqs, options


def declared_extras() -> set[str] | None:
    """The extras pyproject.toml declares, or None before the package declares any."""
    extras = PYPROJECT.get("optional-dependencies")
    return {canonicalize_name(e) for e in extras} if extras else None


def declared_ranges() -> dict[str, SpecifierSet]:
    """name -> specifier of what the package needs: pyproject's dependencies (and every extra's),
    or, while the wheel declares none, the runtime lock's inputs (requirements.in)."""
    lines = list(PYPROJECT.get("dependencies") or [])
    for deps in (PYPROJECT.get("optional-dependencies") or {}).values():
        lines += deps
    if not lines:
        lines = [
            raw.split("#", 1)[0].strip()
            for raw in (REPO / "requirements.in").read_text().splitlines()
            if raw.split("#", 1)[0].strip()
        ]
    ranges: dict[str, SpecifierSet] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        ranges[name] = ranges.get(name, SpecifierSet()) & req.specifier
    return ranges


def assert_names_this_package(req: Requirement, where: str) -> None:
    assert canonicalize_name(req.name) == canonicalize_name(PYPROJECT["name"]), (
        f"{where} installs {req.name!r}, not this repository's package {PYPROJECT['name']!r}"
    )
    assert req.extras, f"{where}: install an extra (aws, gcp, azure or kserve), not the bare package"


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        joined.append(buf + line)
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def known_env_names() -> set[str]:
    """Every variable the package reads: the cloud profiles' ``${NAME}`` plus what the engine reads."""
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", (REPO / "include" / "clouds.yaml").read_text()))
    for module in (REPO / "include" / "mlops_core").rglob("*.py"):
        names |= set(re.findall(r"""environ(?:\.get\(|\[)\s*["']([A-Z0-9_]+)["']""", module.read_text()))
    return names


SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(password|secret|token|access_key|account_key)\s*[=:]\s*['\"]?[A-Za-z0-9/+]{12,}"),
    re.compile(r"(?i)AccountKey=[A-Za-z0-9/+]{20,}"),
    re.compile(r"https?://[^/\s:@]+:[^/\s@]+@"),  # credentials in a URL
]


def recipe_files() -> list[Path]:
    vendored = {HELM_SCHEMA, MWAA_CONSTRAINTS}
    return [
        p
        for p in sorted(RECIPES.rglob("*"))
        if p.is_file() and p not in vendored and "__pycache__" not in p.parts
    ]


# ---------------------------------------------------------------- every recipe


@pytest.mark.parametrize("path", recipe_files(), ids=lambda p: str(p.relative_to(RECIPES)))
def test_no_secrets_in_any_recipe_file(path):
    text = path.read_text()
    found = [m.group(0) for pattern in SECRET_PATTERNS for m in pattern.finditer(text)]
    assert not found, f"{path} holds what looks like a credential: {found}"


def test_the_secret_scan_can_fail():
    assert any(
        p.search("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY")
        for p in SECRET_PATTERNS
    )
    assert any(p.search("MLFLOW_TRACKING_URI=https://user:hunter2@mlflow") for p in SECRET_PATTERNS)


@pytest.mark.parametrize("recipe", ["mwaa", "composer", "astro", "docker", "helm"])
def test_pipeline_differs_from_the_repository_example_only_by_its_cloud(recipe):
    mine = (RECIPES / recipe / "dags" / "pipelines" / "breast_cancer.yaml").read_text().splitlines()
    ours = (REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text().splitlines()
    differ = [(a, b) for a, b in zip(mine, ours, strict=True) if a != b]
    assert len(differ) == 1 and differ[0][0].startswith("cloud:"), differ
    spec = yaml.safe_load("\n".join(mine))
    assert spec["cloud"] in {"local", "aws", "gcp", "azure"}


@pytest.mark.parametrize("recipe", ["mwaa", "composer", "astro", "docker", "helm"])
def test_loader_dag_is_the_repository_one(recipe):
    assert (RECIPES / recipe / "dags" / "mlops_pipelines.py").read_text() == (
        REPO / "dags" / "mlops_pipelines.py"
    ).read_text()


@pytest.mark.parametrize(
    "copy",
    [
        RECIPES / "mwaa" / "dags" / "mlops" / "clouds.yaml",
        RECIPES / "composer" / "dags" / "mlops" / "clouds.yaml",
        RECIPES / "astro" / "include" / "clouds.yaml",
        RECIPES / "docker" / "clouds.yaml",
    ],
    ids=lambda p: str(p.relative_to(RECIPES)),
)
def test_cloud_profiles_are_the_repository_ones(copy):
    """A platform without this repository needs the profiles file next to its DAGs: the same one."""
    assert copy.read_text() == (REPO / "include" / "clouds.yaml").read_text()


@pytest.mark.parametrize("script", sorted(RECIPES.rglob("*.sh")), ids=lambda p: str(p.relative_to(RECIPES)))
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


# ---------------------------------------------------------------- requirement lines vs pyproject


REQUIREMENT_FILES = [
    RECIPES / "mwaa" / "requirements.txt",
    RECIPES / "mwaa" / "requirements-private.txt",
    RECIPES / "composer" / "pypi-packages.txt",
    RECIPES / "astro" / "requirements.txt",
]


@pytest.mark.parametrize("path", REQUIREMENT_FILES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_requirement_lines_install_this_package(path):
    reqs, _ = requirement_lines(path)
    assert len(reqs) == 1, f"{path}: one line, the package with its extra (it brings the rest)"
    assert_names_this_package(reqs[0], str(path))


def _recipe_extras() -> list[tuple[str, str]]:
    found = []
    for path in REQUIREMENT_FILES:
        for req in requirement_lines(path)[0]:
            found += [(str(path.relative_to(RECIPES)), extra) for extra in sorted(req.extras)]
    for path in (RECIPES / "docker" / "Dockerfile",):
        default = dict(re.findall(r"^ARG (\w+)=(\S+)", path.read_text(), re.M))["MLOPS_EXTRAS"]
        found += [(str(path.relative_to(RECIPES)), extra) for extra in default.split(",")]
    return found


@pytest.mark.parametrize(("where", "extra"), _recipe_extras())
def test_recipe_extras_are_ones_the_package_declares(where, extra):
    declared = declared_extras()
    if declared is None:
        pytest.skip("pyproject.toml declares no optional-dependencies yet (the distribution work adds them)")
    assert canonicalize_name(extra) in declared, (
        f"{where} installs extra {extra!r}; pyproject declares {declared}"
    )


def test_composer_list_is_what_gcloud_reads():
    """Composer takes PEP 508 lines only: a lowercase name, optional extras and version; no pip options."""
    for line in (RECIPES / "composer" / "pypi-packages.txt").read_text().splitlines():
        assert line and not line.startswith(("#", "-")), f"not a package line: {line!r}"
        req = Requirement(line)
        assert req.name == req.name.lower(), line
        assert not req.url and req.marker is None, line


# ---------------------------------------------------------------- MWAA


def test_mwaa_constraint_is_a_file_the_dags_folder_ships():
    for name in ("requirements.txt", "requirements-private.txt"):
        _, options = requirement_lines(RECIPES / "mwaa" / name)
        constraints = [o[1] for o in options if o[0] in {"--constraint", "-c"}]
        assert constraints == ["/usr/local/airflow/dags/mlops/constraints-3.3.1-py3.12-mlops.txt"], name
        shipped = RECIPES / "mwaa" / "dags" / constraints[0].removeprefix("/usr/local/airflow/dags/")
        assert shipped == MWAA_CONSTRAINTS and shipped.is_file()


def test_mwaa_private_mode_installs_only_from_plugins_zip():
    _, options = requirement_lines(RECIPES / "mwaa" / "requirements-private.txt")
    assert ["--no-index"] in options and ["--find-links", "/usr/local/airflow/plugins"] in options


def _constraint_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in MWAA_CONSTRAINTS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version, f"not a pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def test_mwaa_constraints_are_airflow_3_3_1_with_only_pandas_changed():
    pins = _constraint_pins()
    assert len(pins) > 600  # the whole constraints file, not an excerpt
    assert "apache-airflow" not in pins  # Airflow's constraints pin everything but Airflow itself
    assert pins["apache-airflow-providers-amazon"] == Version("9.34.0")
    overrides = re.findall(r"^# mlops-override: (.+)$", MWAA_CONSTRAINTS.read_text(), re.M)
    assert overrides == ["pandas==3.0.5 -> pandas==2.3.3"]
    assert pins["pandas"] == Version("2.3.3")


def test_mwaa_constraints_allow_every_range_the_package_declares():
    """MWAA's pinned constraints against our ranges: a pin outside a range fails the install there."""
    pins = _constraint_pins()
    ranges = declared_ranges()
    clash = {
        name: (str(pins[name]), str(spec))
        for name, spec in ranges.items()
        if name in pins and not spec.contains(pins[name], prereleases=True)
    }
    assert "pandas" in ranges and "pandas" in pins  # the check compares something
    assert clash == {}, f"constraints pin versions the package excludes: {clash}"


def _recipe_airflow_versions() -> dict[str, Version]:
    """The Airflow each recipe runs: MWAA's image, the official image's tag, the Helm values."""
    froms = [a for op, a in dockerfile(RECIPES / "docker" / "Dockerfile") if op == "FROM"]
    helm = yaml.safe_load((RECIPES / "helm" / "values.yaml").read_text())
    return {
        "mwaa": Version(re.search(r"constraints-(\d+\.\d+\.\d+)-", MWAA_CONSTRAINTS.name).group(1)),
        "docker": _airflow_tag(froms[0])[0],
        "helm": Version(helm["airflowVersion"]),
    }


@pytest.mark.parametrize("recipe", ["mwaa", "docker", "helm"])
def test_recipe_airflow_is_one_the_package_allows(recipe):
    """The package never pins Airflow: its declared range must hold the Airflow each platform runs."""
    declared = [
        Requirement(d)
        for d in PYPROJECT.get("dependencies") or []
        if canonicalize_name(Requirement(d).name) == "apache-airflow"
    ]
    if not declared:
        pytest.skip("pyproject.toml declares no apache-airflow range yet (the distribution work adds it)")
    version = _recipe_airflow_versions()[recipe]
    assert declared[0].specifier.contains(version), (
        f"{recipe} runs Airflow {version}, outside {declared[0].specifier}"
    )


def test_startup_script_exports_what_the_package_reads():
    """MWAA keeps only exported variables; every name must be one the package or its profiles read."""
    text = (RECIPES / "mwaa" / "startup.sh").read_text()
    assigned = re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", text, re.M)
    exported = re.findall(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=", text, re.M)
    assert assigned == exported, "a variable that is not exported never reaches Airflow on MWAA"
    assert not [n for n in exported if n.startswith("MWAA__") or n in {"AIRFLOW_HOME", "PATH"}]
    unknown = set(exported) - known_env_names()
    assert not unknown, f"startup.sh sets variables nothing reads (typos?): {unknown}"
    clouds = dict(re.findall(r'^export (MLOPS_CLOUDS_FILE)="([^"]+)"', text, re.M))["MLOPS_CLOUDS_FILE"]
    assert (RECIPES / "mwaa" / "dags" / clouds.removeprefix("/usr/local/airflow/dags/")).is_file()


def test_env_name_check_can_fail():
    assert "MLOPS_AWS_LAKE" in known_env_names() and "MLOPS_AWS_LAEK" not in known_env_names()


# ---------------------------------------------------------------- Composer


def test_composer_env_variables_are_ones_the_package_reads():
    text = (RECIPES / "composer" / "deploy.sh").read_text()
    pairs = re.search(r'--update-env-variables="([^"]+)"', text).group(1).split(",")
    names = {pair.split("=", 1)[0] for pair in pairs}
    assert names - known_env_names() == set()
    assert "MLOPS_CLOUDS_FILE=/home/airflow/gcs/dags/mlops/clouds.yaml" in pairs
    assert (RECIPES / "composer" / "dags" / "mlops" / "clouds.yaml").is_file()
    assert "--update-pypi-packages-from-file" in text


# ---------------------------------------------------------------- Dockerfiles


def _airflow_tag(base: str) -> tuple[Version, str]:
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(3\.\d+)", base)
    assert match, f"not an official Airflow image tag: {base}"
    return Version(match.group(1)), match.group(2)


def test_official_image_recipe():
    steps = dockerfile(RECIPES / "docker" / "Dockerfile")
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 1
    airflow, python = _airflow_tag(froms[0])
    assert airflow.major == 3
    user = "root"
    installs = []
    for op, args in steps:
        if op == "USER":
            user = args.split(":")[0]
        if op == "RUN" and "pip install" in args:
            assert user == "airflow", "pip must run as the airflow user"
            installs.append(args)
    assert len(installs) == 1
    pip_args = shlex.split(installs[0].split("pip install", 1)[1])
    assert "apache-airflow==${AIRFLOW_VERSION}" in pip_args, "pin Airflow to the image's own version"
    assert any(a.startswith("airflow-mlops[") for a in pip_args)
    assert not [a for a in pip_args if a in {"-c", "--constraint"}]
    assert user == "airflow", "the image must not end as root"
    env = " ".join(args for op, args in steps if op == "ENV")
    assert "MLOPS_CLOUDS_FILE=/opt/airflow/mlops/clouds.yaml" in env
    copies = [args for op, args in steps if op == "COPY"]
    assert "--chown=airflow:0 clouds.yaml /opt/airflow/mlops/clouds.yaml" in copies
    assert "--chown=airflow:0 dags/ /opt/airflow/dags/" in copies
    assert python in {"3.11", "3.12", "3.13"}


def test_image_python_is_one_the_package_supports():
    froms = [a for op, a in dockerfile(RECIPES / "docker" / "Dockerfile") if op == "FROM"]
    _, python = _airflow_tag(froms[0])
    supported = SpecifierSet(PYPROJECT["requires-python"])
    if not supported.contains(f"{python}.0") and declared_extras() is None:
        pytest.skip(f"requires-python {supported} predates the distribution work that widens it")
    assert supported.contains(f"{python}.0"), f"image Python {python} outside requires-python {supported}"


def test_astro_recipe():
    steps = dockerfile(RECIPES / "astro" / "Dockerfile")
    froms = [args for op, args in steps if op == "FROM"]
    match = re.fullmatch(r"astrocrpublic\.azurecr\.io/runtime:(\d+)\.(\d+)-(\d+)", froms[0])
    assert match and match.group(1) == "3", f"not an Astro Runtime 3 (Airflow 3) image: {froms[0]}"
    assert not [a for op, a in steps if op == "RUN" and "pip install" in a], (
        "Astro installs requirements.txt itself"
    )
    env = " ".join(args for op, args in steps if op == "ENV")
    assert "MLOPS_CLOUDS_FILE=/usr/local/airflow/include/clouds.yaml" in env
    # The runtime's ONBUILD COPY of both files fails the build when either is missing.
    assert (RECIPES / "astro" / "requirements.txt").is_file() and (
        RECIPES / "astro" / "packages.txt"
    ).is_file()
    for line in (RECIPES / "astro" / "packages.txt").read_text().splitlines():
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.\-]+", line), f"not a Debian package name: {line!r}"


@pytest.mark.parametrize("recipe", ["docker", "astro"])
def test_image_env_names_are_ones_the_package_reads(recipe):
    env = " ".join(args for op, args in dockerfile(RECIPES / recipe / "Dockerfile") if op == "ENV")
    names = set(re.findall(r"([A-Z][A-Z0-9_]*)=", env))
    assert names and names - known_env_names() == set()


# ---------------------------------------------------------------- Helm


@pytest.fixture(scope="module")
def chart_schema() -> dict:
    return json.loads(HELM_SCHEMA.read_text())


@pytest.fixture
def values() -> dict:
    return yaml.safe_load((RECIPES / "helm" / "values.yaml").read_text())


def _errors(schema: dict, values: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(values)]


def test_vendored_schema_is_the_airflow_3_chart(chart_schema):
    props = chart_schema["properties"]
    assert "apiServer" in props and "dagProcessor" in props  # Airflow 3 components
    assert props["airflowVersion"]["default"] == "3.2.2"  # chart 1.22.0's default


def test_helm_values_validate_against_the_chart_schema(chart_schema, values):
    assert _errors(chart_schema, values) == []


def test_helm_values_use_only_keys_the_chart_knows(chart_schema, values):
    """The chart's schema leaves its top level open (a typo there is silently ignored by Helm), so
    this check is ours: every top-level key is one the chart defines."""
    assert set(values) - set(chart_schema["properties"]) == set()


def test_chart_schema_refuses_a_misspelled_key(chart_schema, values):
    values["dags"]["gitSync"]["repository"] = values["dags"]["gitSync"].pop("repo")
    assert any("'repository' was unexpected" in e for e in _errors(chart_schema, values))


def test_chart_schema_refuses_a_misspelled_env_field(chart_schema, values):
    values["env"][0]["valeu"] = values["env"][0].pop("value")
    assert _errors(chart_schema, values)


def test_chart_schema_does_not_check_top_level_keys_but_we_do(chart_schema, values):
    values["executer"] = values.pop("executor")
    assert _errors(chart_schema, values) == []  # the chart's schema lets it through ...
    assert set(values) - set(chart_schema["properties"]) == {"executer"}  # ... our check does not


def test_helm_runs_the_docker_recipe_image(values):
    froms = [a for op, a in dockerfile(RECIPES / "docker" / "Dockerfile") if op == "FROM"]
    airflow, _ = _airflow_tag(froms[0])
    assert values["airflowVersion"] == str(airflow)
    assert values["images"]["airflow"]["tag"].startswith(f"{airflow}-")
    assert values["dags"]["gitSync"]["enabled"] and values["dags"]["gitSync"]["subPath"] == "dags"
    assert {e["name"] for e in values["env"]} - known_env_names() == set()
