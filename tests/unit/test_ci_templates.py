"""The CI templates of include/ci/ (docs/ci-cd.md): each one is a file a pipeline repository copies.

Four are checked against the published JSON Schema of their platform (SchemaStore's, vendored in
check-jsonschema), through the ``check-jsonschema`` CLI for real, and a deliberately broken copy of
each must fail the same check: github-actions.yml (``github-workflows``), gitlab-ci.yml
(``gitlab-ci``), cloudbuild.yaml (``cloudbuild``) and azure-pipelines.yml (``azure-pipelines``).

buildspec.yml (AWS CodeBuild) and the Jenkinsfile have no published schema. Their checks here are
structural only: buildspec.yml against a small JSON Schema written in this module from AWS's
buildspec reference (version 0.2, the four phases with their ``commands`` lists, ``env`` with
variables / parameter-store / secrets-manager), the Jenkinsfile by parsing its declarative blocks
(``pipeline`` with ``agent`` and ``stages``, every leaf ``stage('...')`` with ``steps``, balanced
braces, ``when { branch 'main' }`` on the deploy stage). Neither proves that CodeBuild or Jenkins
accepts the file.

Every template must run the same commands (include/ci/check.sh: install, lint, validate, dagbag,
smoke, deploy), deploy only from main, and hold nothing that looks like a credential. The GitHub
Actions template's steps are also run for real: tests/integration/test_github_actions_template.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helpers import REPO

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.unit

CI = REPO / "include" / "ci"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
TEMPLATES = [
    "github-actions.yml",
    "gitlab-ci.yml",
    "Jenkinsfile",
    "buildspec.yml",
    "cloudbuild.yaml",
    "azure-pipelines.yml",
]
CHECK_STEPS = {"install", "lint", "validate", "dagbag", "smoke", "deploy"}


# --- the published schemas, through check-jsonschema ------------------------------------------


def _replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"the broken copy needs {old!r} in the template"
        return text.replace(old, new, 1)

    return mutate


def _append(line: str) -> Callable[[str], str]:
    return lambda text: text + line + "\n"


# (template, vendored schema, extra flags). The azure-pipelines schema holds patterns that the
# default (unicode) regex engine of check-jsonschema cannot compile, hence its non-unicode variant.
SCHEMAS = [
    ("github-actions.yml", "github-workflows", []),
    ("gitlab-ci.yml", "gitlab-ci", []),
    ("cloudbuild.yaml", "cloudbuild", []),
    ("azure-pipelines.yml", "azure-pipelines", ["--regex-variant", "nonunicode"]),
]

# Each mistake a person could make, and the schema error that must catch it.
BROKEN = [
    ("github-actions.yml", "unknown top-level key", _append("deploy-when: main"), "Additional properties"),
    (
        "github-actions.yml",
        "misspelt step key",
        _replace("run: bash include/ci/check.sh lint", "runs: bash include/ci/check.sh lint"),
        "is not valid under any of the given schemas",
    ),
    ("gitlab-ci.yml", "top-level key that is not a job", _append("not-a-job: 42"), "is not of type 'object'"),
    (
        "gitlab-ci.yml",
        "unknown rules:when",
        _replace(
            '    - if: $CI_COMMIT_BRANCH == "main" && $IMAGE\n',
            '    - if: $CI_COMMIT_BRANCH == "main" && $IMAGE\n      when: sometimes\n',
        ),
        "is not valid under any of the given schemas",
    ),
    # cloudbuild's schema accepts unknown top-level keys: the broken copies use wrong types
    (
        "cloudbuild.yaml",
        "timeout as a mapping",
        _replace("timeout: 3600s", "timeout: {seconds: 3600}"),
        "is not of type 'string'",
    ),
    (
        "cloudbuild.yaml",
        "entrypoint as a list",
        _replace("entrypoint: bash", "entrypoint: [bash]"),
        "is not of type 'string'",
    ),
    (
        "azure-pipelines.yml",
        "unknown top-level key",
        _append("deploy-when: main"),
        "is not valid under any of the given schemas",
    ),
    (
        "azure-pipelines.yml",
        "timeout as a number",
        _replace('timeoutInMinutes: "30"', "timeoutInMinutes: 30"),
        "is not of type 'string'",
    ),
]


def check_jsonschema(schema: str, path: Path, flags: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", f"vendor.{schema}", *flags, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("template", "schema", "flags"), SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_template_matches_its_published_schema(template: str, schema: str, flags: list[str]) -> None:
    out = check_jsonschema(schema, CI / template, flags)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok -- validation done" in out.stdout


@pytest.mark.parametrize(
    ("template", "mistake", "mutate", "error"), BROKEN, ids=[f"{b[0]}: {b[1]}" for b in BROKEN]
)
def test_broken_copy_fails_the_same_check(
    tmp_path: Path, template: str, mistake: str, mutate: Callable[[str], str], error: str
) -> None:
    schema, flags = next((s, f) for t, s, f in SCHEMAS if t == template)
    broken = tmp_path / template
    broken.write_text(mutate((CI / template).read_text()))
    out = check_jsonschema(schema, broken, flags)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Schema validation errors were encountered" in out.stdout  # the schema said no, not the parser
    assert error in out.stdout


# --- buildspec.yml: AWS's documented structure (no published schema) --------------------------

_COMMANDS = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
_PHASE = {
    "type": "object",
    "required": ["commands"],
    "additionalProperties": False,
    "properties": {
        "run-as": {"type": "string"},
        "on-failure": {"type": "string", "pattern": "^(ABORT|CONTINUE|RETRY(-[0-9]+)?(-.+)?)$"},
        "commands": _COMMANDS,
        "finally": _COMMANDS,
    },
}
_INSTALL = {
    **_PHASE,
    "properties": {**_PHASE["properties"], "runtime-versions": {"type": "object"}},
}
_NAMES_TO_STRINGS = {
    "type": "object",
    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": {"type": "string"},
}
# https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html (version 0.2)
BUILDSPEC_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["version", "phases"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 0.2},
        "run-as": {"type": "string"},
        "env": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "shell": {"enum": ["bash", "/bin/sh", "sh", "powershell.exe", "cmd.exe", "pwsh.exe"]},
                "variables": _NAMES_TO_STRINGS,
                "parameter-store": _NAMES_TO_STRINGS,
                "secrets-manager": _NAMES_TO_STRINGS,
                "exported-variables": {"type": "array", "items": {"type": "string"}},
                "git-credential-helper": {"enum": ["yes", "no"]},
            },
        },
        "proxy": {"type": "object"},
        "batch": {"type": "object"},
        "phases": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {"install": _INSTALL, "pre_build": _PHASE, "build": _PHASE, "post_build": _PHASE},
        },
        "reports": {"type": "object"},
        "artifacts": {"type": "object"},
        "cache": {"type": "object"},
    },
}


def buildspec_errors(data: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(BUILDSPEC_SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_buildspec_has_the_documented_structure() -> None:
    data = yaml.safe_load((CI / "buildspec.yml").read_text())
    assert buildspec_errors(data) == []
    assert list(data["phases"]) == ["install", "pre_build", "build", "post_build"]  # run in this order
    assert data["phases"]["install"]["runtime-versions"] == {"python": 3.11}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set("version", 0.3),
        _set("phases.build.commands", "docker build ."),  # a string, not a list
        _set("phases.prebuild", {"commands": ["true"]}),  # misspelt phase
        _set("phases.pre_build.runtime-versions", {"python": 3.11}),  # install only
        _set("env.variables.MLOPS_SMOKE_DATE", date(2026, 1, 31)),  # an unquoted YAML date
        _set("env.secret-manager", {"TOKEN": "ci:token"}),  # misspelt secrets-manager
    ],
    ids=["version", "commands-string", "phase-name", "runtime-outside-install", "unquoted-date", "env-key"],
)
def test_buildspec_check_can_fail(mutate: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load((CI / "buildspec.yml").read_text())
    mutate(data)
    assert buildspec_errors(data)


# --- the Jenkinsfile: declarative structure (no published schema) -----------------------------


class Block:
    """One ``header { ... }`` block of a Jenkinsfile: its header, direct statements and children."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.statements: list[str] = []
        self.children: list[Block] = []

    def child(self, header: str) -> Block | None:
        return next((c for c in self.children if c.header == header), None)

    def walk(self) -> list[Block]:
        return [self, *(b for c in self.children for b in c.walk())]

    def text(self) -> str:
        return " ".join([*self.statements, *(f"{c.header} {{ {c.text()} }}" for c in self.children)])


def parse_groovy_blocks(source: str) -> Block:
    """Blocks by brace matching; strings and comments are skipped, unbalanced braces are an error."""
    root, stack, buf, i = Block("<file>"), [], "", 0
    stack.append(root)
    while i < len(source):
        ch = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i) if "\n" in source[i:] else len(source)
            continue
        if source.startswith("/*", i):
            end = source.find("*/", i + 2)
            assert end != -1, "unterminated /* comment"
            i = end + 2
            continue
        if ch in "'\"":
            quote = source[i : i + 3] if source[i : i + 3] in ("'''", '"""') else ch
            j = i + len(quote)
            while not source.startswith(quote, j):
                assert j < len(source), f"unterminated string at offset {i}"
                j += 2 if source[j] == "\\" else 1
            buf += source[i : j + len(quote)]
            i = j + len(quote)
            continue
        if ch == "{":
            block = Block(" ".join(buf.split("\n")[-1].split()))
            rest = "\n".join(buf.split("\n")[:-1]).strip()
            if rest:
                stack[-1].statements.extend(s.strip() for s in rest.split("\n") if s.strip())
            stack[-1].children.append(block)
            stack.append(block)
            buf = ""
        elif ch == "}":
            assert len(stack) > 1, f"unbalanced '}}' at offset {i}"
            stack[-1].statements.extend(s.strip() for s in buf.split("\n") if s.strip())
            stack.pop()
            buf = ""
        else:
            buf += ch
        i += 1
    assert len(stack) == 1, f"unbalanced braces: {len(stack) - 1} block(s) never closed ({stack[-1].header})"
    root.statements.extend(s.strip() for s in buf.split("\n") if s.strip())
    return root


_STAGE = re.compile(r"^stage\('([^']+)'\)$")


def jenkinsfile_problems(source: str) -> list[str]:
    """What a declarative Jenkinsfile must have; an empty list when it has it all."""
    try:
        root = parse_groovy_blocks(source)
    except AssertionError as err:
        return [str(err)]
    pipelines = [b for b in root.children if b.header == "pipeline"]
    if len(pipelines) != 1 or root.statements:
        return ["the file must be exactly one `pipeline { ... }` block"]
    pipeline, problems = pipelines[0], []
    if not (
        pipeline.child("agent") or any(re.fullmatch(r"agent (none|any)", s) for s in pipeline.statements)
    ):
        problems.append("pipeline has no agent")
    stages = pipeline.child("stages")
    if stages is None:
        return [*problems, "pipeline has no stages"]
    all_stages = [b for b in stages.walk() if re.match(r"stage\s*\(", b.header)]
    if not all_stages:
        problems.append("no stage('...') in stages")
    for stage in all_stages:
        if not _STAGE.match(stage.header):
            problems.append(f"malformed stage header {stage.header!r}")
        bodies = [h for h in ("steps", "stages", "parallel") if stage.child(h)]
        if len(bodies) != 1:
            problems.append(f"{stage.header} needs exactly one of steps / stages / parallel, has {bodies}")
        nested = stage.child("stages")
        if nested is not None and not all(_STAGE.match(c.header) for c in nested.children):
            problems.append(f"{stage.header}: its stages block may only hold stage('...') blocks")
    deploy = next((s for s in all_stages if s.header == "stage('Deploy')"), None)
    when = deploy.child("when") if deploy else None
    if when is None or when.statements != ["branch 'main'"] or when.children:
        problems.append("stage('Deploy') must have `when { branch 'main' }`")
    outside = [
        s.header
        for s in all_stages
        if "check.sh deploy" in " ".join(s.statements + [c.text() for c in s.children if c.header == "steps"])
        and not (deploy and s in deploy.walk())
    ]
    if outside:
        problems.append(f"check.sh deploy outside stage('Deploy'): {outside}")
    image = next((s for s in all_stages if s.header == "stage('Image')"), None)
    if image is None or "branch 'main'" not in (image.child("when") or Block("")).text():
        problems.append("stage('Image') must run on main only")
    return problems


def test_jenkinsfile_is_a_declarative_pipeline() -> None:
    source = (CI / "Jenkinsfile").read_text()
    assert jenkinsfile_problems(source) == []
    stages = [b.header for b in parse_groovy_blocks(source).walk() if _STAGE.match(b.header)]
    assert stages[:6] == [
        "stage('Check')",
        "stage('Install')",
        "stage('Lint')",
        "stage('Validate')",
        "stage('DagBag')",
        "stage('Smoke')",
    ]


@pytest.mark.parametrize(
    ("mistake", "mutate", "problem"),
    [
        ("a brace missing", lambda s: s[: s.rstrip().rfind("}")], "unbalanced braces"),
        ("a brace too many", lambda s: s + "}\n", "unbalanced '}'"),
        ("no agent", lambda s: s.replace("  agent none\n", "", 1), "no agent"),
        (
            "deploy on every branch",
            lambda s: s.replace("      when { branch 'main' }\n", "", 1),
            "stage('Deploy')",
        ),
        (
            "deploy outside its stage",
            lambda s: s.replace("bash include/ci/check.sh smoke", "bash include/ci/check.sh deploy", 1),
            "outside stage('Deploy')",
        ),
        (
            "a stage without steps",
            lambda s: s.replace(
                "steps {\n            sh '. .venv/bin/activate && bash include/ci/check.sh lint'\n          }",
                "",
                1,
            ),
            "stage('Lint') needs exactly one",
        ),
    ],
    ids=["brace-missing", "brace-too-many", "no-agent", "deploy-every-branch", "deploy-outside", "no-steps"],
)
def test_jenkinsfile_check_can_fail(mistake: str, mutate: Callable[[str], str], problem: str) -> None:
    source = (CI / "Jenkinsfile").read_text()
    broken = mutate(source)
    assert broken != source, f"the mutation for {mistake!r} changed nothing"
    problems = jenkinsfile_problems(broken)
    assert any(problem in p for p in problems), problems


# --- what every template must do ---------------------------------------------------------------

_CHECK_CALL = re.compile(r"include/ci/check\.sh((?:[ \t]+(?:install|lint|validate|dagbag|smoke|deploy)\b)+)")


def check_steps(text: str) -> set[str]:
    return {step for m in _CHECK_CALL.finditer(text) for step in m.group(1).split()}


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_runs_the_shared_commands(template: str) -> None:
    assert check_steps((CI / template).read_text()) == CHECK_STEPS


def test_check_script_runs_what_the_issue_lists() -> None:
    text = (CI / "check.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    for command in (
        "ruff check .",
        "mlops-airflow validate dags/pipelines",
        "mlops-airflow dagbag dags",
        'airflow dags test "$dag" "$date"',
        "airflow db migrate",
        'mktemp -d "${TMPDIR:-/tmp}/mlops-ci.XXXXXX"',
        'aws s3 sync dags/ "s3://$MWAA_BUCKET/dags/" --delete',
        "gcloud storage rsync dags",
        "--reuse-values",
        'git push --force "$remote"',
    ):
        assert command in text, command
    syntax = subprocess.run(["bash", "-n", str(CI / "check.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def _check_sh(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DEPLOY_", "GITHUB_"))}
    return subprocess.run(
        ["bash", str(CI / "check.sh"), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_script_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    out = _check_sh(tmp_path, "lint")
    assert out.returncode == 2 and "no dags/ folder" in out.stderr
    (tmp_path / "dags").mkdir()
    out = _check_sh(tmp_path, "publish")
    assert out.returncode == 2 and "unknown step 'publish'" in out.stderr
    out = _check_sh(tmp_path, "smoke", MLOPS_SMOKE_DAG="breast_cancer_training")
    assert out.returncode == 2 and "MLOPS_SMOKE_DATE is empty" in out.stderr
    out = _check_sh(tmp_path, "deploy", DEPLOY_TARGET="ftp")
    assert out.returncode == 2 and "not one of mwaa, composer, helm, git-sync, none" in out.stderr
    out = _check_sh(tmp_path, "deploy", DEPLOY_TARGET="mwaa")
    assert out.returncode != 0 and "MWAA_BUCKET" in out.stderr


def test_check_script_skips_with_a_notice(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    out = _check_sh(tmp_path, "smoke", "deploy", MLOPS_SMOKE_DAG="", DEPLOY_TARGET="none")
    assert out.returncode == 0, out.stderr
    assert "notice: MLOPS_SMOKE_DAG is empty: the dags-test smoke run is skipped" in out.stdout
    assert "notice: DEPLOY_TARGET is none: no DAGs deployed" in out.stdout
    out = _check_sh(tmp_path, "smoke", GITHUB_ACTIONS="true")
    assert "::notice::MLOPS_SMOKE_DAG is empty" in out.stdout  # an annotation on GitHub
    assert list(tmp_path.iterdir()) == [tmp_path / "dags"]  # its throwaway area is elsewhere, and gone


# --- deploys happen on main only -----------------------------------------------------------------


def _yaml(name: str) -> dict[Any, Any]:
    return yaml.safe_load((CI / name).read_text())


def test_github_actions_deploys_from_main_only() -> None:
    jobs = _yaml("github-actions.yml")["jobs"]
    releasing = {
        job_id
        for job_id, job in jobs.items()
        for step in job["steps"]
        if re.search(r"check\.sh deploy|docker push", step.get("run", ""))
    }
    assert releasing == {"release"}
    release = jobs["release"]
    assert release["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert release["needs"] == "check"
    assert release["permissions"]["id-token"] == "write"
    assert jobs["check"].get("permissions") is None  # the workflow's contents: read


def test_github_actions_pins_every_action() -> None:
    uses = [
        s["uses"] for job in _yaml("github-actions.yml")["jobs"].values() for s in job["steps"] if "uses" in s
    ]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+|[0-9a-f]{40})", u) for u in uses), uses
    assert {
        "actions/checkout@v4",
        "actions/setup-python@v5",
        "aws-actions/configure-aws-credentials@v4",
    } <= set(uses)
    assert "google-github-actions/auth@v2" in uses


def _gitlab_jobs() -> dict[str, dict[str, Any]]:
    data = _yaml("gitlab-ci.yml")
    reserved = {"workflow", "stages", "variables", "default", "include", "image", "services", "cache"}
    jobs = {k: v for k, v in data.items() if k not in reserved}
    for job in jobs.values():  # one level of `extends`, what the template uses
        if "extends" in job:
            job.update({k: v for k, v in jobs[job["extends"]].items() if k not in job})
    return {k: v for k, v in jobs.items() if not k.startswith(".")}  # hidden jobs never run


def test_gitlab_deploys_from_main_only() -> None:
    jobs = _gitlab_jobs()
    releasing = {
        k for k, j in jobs.items() if re.search(r"check\.sh deploy|--destination", " ".join(j["script"]))
    }
    assert releasing == {"build-image", "deploy-mwaa", "deploy-composer", "deploy-helm", "deploy-git-sync"}
    for name in releasing:
        rules = jobs[name]["rules"]
        assert rules and all(r["if"].startswith('$CI_COMMIT_BRANCH == "main" && ') for r in rules), name
        target = name.removeprefix("deploy-")
        if name != "build-image":
            assert rules[0]["if"].endswith(f'$DEPLOY_TARGET == "{target}"')
    assert "rules" not in jobs["check"]


def test_cloud_build_deploys_from_main_only() -> None:
    steps = {s["id"]: s for s in _yaml("cloudbuild.yaml")["steps"]}
    assert list(steps) == ["check", "image", "deploy"]
    for step_id, action in (("image", "docker push"), ("deploy", "check.sh deploy")):
        script = steps[step_id]["args"][-1]
        guard = script.index('if [ "$BRANCH_NAME" != main ]')
        assert script.index("exit 0") < script.index(action) and guard < script.index(action), step_id
    assert "check.sh deploy" not in steps["check"]["args"][-1]


def test_azure_pipelines_deploys_from_main_only() -> None:
    stages = {s["stage"]: s for s in _yaml("azure-pipelines.yml")["stages"]}
    assert "check.sh deploy" not in yaml.safe_dump(stages["check"])
    release = stages["release"]
    assert release["dependsOn"] == "check"
    assert "eq(variables['Build.SourceBranch'], 'refs/heads/main')" in release["condition"]
    assert "ne(variables['Build.Reason'], 'PullRequest')" in release["condition"]
    assert release["condition"].startswith("and(succeeded(), ")


def test_buildspec_deploys_from_main_only() -> None:
    phases = _yaml("buildspec.yml")["phases"]
    gate = phases["pre_build"]["commands"][-1]
    assert 'if [ "$BRANCH" = main ]; then RELEASE=true; else RELEASE=false; fi' in gate
    (build,) = phases["build"]["commands"]
    assert build.lstrip().startswith('if [ "$RELEASE" = true ]') and "docker push" in build
    (post,) = phases["post_build"]["commands"]
    guarded = post[post.index('if [ "$RELEASE" = true ] && [ "$CODEBUILD_BUILD_SUCCEEDING" = 1 ]') :]
    assert "bash include/ci/check.sh deploy" in guarded
    assert all("check.sh deploy" not in c for p in ("install", "pre_build") for c in phases[p]["commands"])


# --- no credentials --------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "password literal": re.compile(r"(?i)\bpassw(or)?d\s*[:=]\s*(?![\s\"']*[$({<])[\"']?[^\s\"']{3,}"),
    "secret literal": re.compile(r"(?i)\b(secret|token|api_key)\s*[:=]\s*[\"'][^\"'$]{8,}[\"']"),
    "GitHub / GitLab / Slack token": re.compile(
        r"\b(gh[pousr]_[A-Za-z0-9]{20,}|glpat-[\w-]{20,}|xox[abp]-[\w-]{10,})"
    ),
    "AWS secret key": re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*\S+"),
}


def secrets_in(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


@pytest.mark.parametrize("name", [*TEMPLATES, "check.sh"])
def test_no_secret_looking_value(name: str) -> None:
    assert secrets_in((CI / name).read_text()) == []


def test_the_secret_scan_can_fail() -> None:
    # built at run time so this file holds no secret-looking literal itself
    planted = {
        "AWS access key id": "aws_access_key_id = " + "AKIA" + "Z" * 16,
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "password literal": "    password: " + "hunter2hunter2",
        "secret literal": 'token: "' + "abcd" * 4 + '"',
        "GitHub / GitLab / Slack token": "ghp_" + "a1" * 15,
        "AWS secret key": "aws_secret_access_key=" + "x" * 40,
    }
    for name, text in planted.items():
        assert name in secrets_in(text), name
    for fine in (
        "password: ${{ secrets.GITHUB_TOKEN }}",
        '--password-stdin "${IMAGE%%/*}"',
        "password: $(PASS)",
    ):
        assert secrets_in(fine) == [], fine
