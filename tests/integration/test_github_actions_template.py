"""The GitHub Actions template (include/ci/github-actions.yml), its steps run for real.

A minimal pipeline repository is written to ``tmp_path`` the way a team would lay it out
(docs/ci-cd.md): the DAG folder's loader, ``dags/pipelines/breast_cancer.yaml``, sample data in
``tests/landing`` (written by ``mlops_dev.datasets.materialize``, as ``make demo`` writes the
landing zone), the locks, ``include/ci/check.sh`` and the template as
``.github/workflows/pipelines.yml``. A small runner here then does what a GitHub runner does with
that file, for the subset the template uses:

* jobs in ``needs`` order; a job's ``if:`` and each step's ``if:`` evaluated against a context the
  test provides (``github.*``, ``vars.*``, ``secrets.*``, ``env.*``, ``steps.*``) with the part of
  the expression language the template uses (``==``, ``!=``, ``&&``, ``||``, ``!``, parentheses,
  string literals; a function call is an error, so the template cannot drift beyond it);
* ``${{ ... }}`` substituted in ``env`` (workflow, job, step), ``with`` and ``run``;
* every ``run:`` as GitHub runs it: ``bash --noprofile --norc -eo pipefail <script>`` in the
  repository with the merged env and GitHub's default variables; after a failed step the rest
  of the job is not run, as with the implicit ``success()``;
* ``uses:`` steps by their local equivalent: checkout = the repository is already there;
  setup-python = this test's venv bin first on PATH (and the version asked for must be this
  Python's); the credential and registry-login actions are not run (their ``with`` is recorded
  for the asserts).

The pull-request case runs the check job's steps 1-5 for real: the install (``uv pip install``
against this venv, which only audits it: the test refuses to run if it would change the venv),
ruff, ``mlops-airflow validate``, the DagBag and one ``airflow dags test`` smoke run; and the
release job must be skipped by its ``if:``. The main-branch cases run the release job's ``run:``
steps with docker, aws, gcloud and helm replaced by recording stubs on PATH (this machine has
no Docker engine and no cloud): the commands, their arguments and the MWAA change detection are
asserted; git-sync pushes for real, to a bare repository standing in for GitHub. A broken
pipeline must stop the check job at its validate step with the import error's message.

For MWAA the aws commands are not stubbed: Debian's AWS CLI (``/usr/bin/aws``, ``make ci-tools``)
runs them, its S3 calls against a moto server and its MWAA call against a loopback recorder (moto
has no MWAA). What is asserted there is their effect, not their argv: the bucket holds exactly the
repository's DAG files (a stale one deleted), requirements.txt and plugins.zip as committed, and
UpdateEnvironment, as the CLI serialised it, names the S3 object versions the bucket really holds.
The other targets' expected commands are written out (no gcloud or helm binary here).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helpers import REPO

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TEMPLATE = REPO / "include" / "ci" / "github-actions.yml"
VENV_BIN = Path(sys.executable).parent
SMOKE_DAG, SMOKE_DATE = "breast_cancer_training", "2026-01-31"
VARS = {
    "MLOPS_SMOKE_DAG": SMOKE_DAG,
    "MLOPS_SMOKE_DATE": SMOKE_DATE,
    "IMAGE_REPOSITORY": "ghcr.io/acme/airflow-mlops",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/mwaa-deployer",
    "AWS_REGION": "eu-west-1",
    "MWAA_BUCKET": "acme-mwaa",
    "MWAA_ENVIRONMENT": "acme-prod",
    "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/42/locations/global/workloadIdentityPools/gh/providers/acme",
    "GCP_SERVICE_ACCOUNT": "composer-deployer@acme.iam.gserviceaccount.com",
    "COMPOSER_ENVIRONMENT": "acme-composer",
    "COMPOSER_LOCATION": "europe-west1",
}
SECRETS = {"GITHUB_TOKEN": "test-github-token", "KUBECONFIG": "apiVersion: v1\nkind: Config\nclusters: []\n"}


# --- the expression language subset -------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+)*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SyntaxError(f"cannot parse {text!r} at {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "")


def _eq(left: Any, right: Any) -> bool:
    left, right = ("" if left is None else left), ("" if right is None else right)
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()  # GitHub compares strings case-insensitively
    return bool(left == right)


class Expression:
    """``a || b && !c == 'x'`` over ``context``: GitHub's precedence, its ``||``/``&&`` values."""

    def __init__(self, text: str, context: dict[str, Any]) -> None:
        self.tokens, self.i, self.context = _tokens(text), 0, context

    def value(self) -> Any:
        result = self._or()
        if self.i != len(self.tokens):
            raise SyntaxError(f"unexpected {self.tokens[self.i]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        self.i += 1
        return self.tokens[self.i - 1]

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if _truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._peek() == "&&":
            self._take()
            right = self._not()
            left = right if _truthy(left) else left
        return left

    def _not(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._not())
        left = self._primary()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            equal = _eq(left, self._primary())
            return equal if op == "==" else not equal
        return left

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            inner = self._or()
            assert self._take()[1] == ")", "missing )"
            return inner
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if kind == "name":
            if self._peek() == "(":
                raise NotImplementedError(f"function {text}() is outside the subset this runner knows")
            if text in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[text]
            root, *path = text.split(".")
            if root not in self.context:
                raise KeyError(f"unknown context {root!r} in the template")
            node: Any = self.context[root]
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            return node
        raise SyntaxError(f"unexpected {text!r}")


def evaluate(text: str, context: dict[str, Any]) -> Any:
    return Expression(text, context).value()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def substitute(value: Any, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: _text(evaluate(m.group(1), context)), _text(value))


def condition(value: Any, context: dict[str, Any]) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    return _truthy(evaluate(whole.group(1) if whole else text, context))


# --- the runner -----------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    outcome: (
        str  # success | failure | skipped (its if:) | not run (an earlier step failed) | local | replaced
    )
    uses: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""


@dataclass
class Job:
    outcome: str  # success | failure | skipped
    steps: list[Step]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def outcomes(self) -> dict[str, str]:
        return {s.name: s.outcome for s in self.steps}


def _uses(step: dict[str, Any], inputs: dict[str, str], env: dict[str, str]) -> str:
    action = step["uses"].split("@")[0]
    if action == "actions/checkout":
        return "local"  # the repository is the working directory already
    if action == "actions/setup-python":
        wanted = inputs["python-version"]
        assert wanted == f"{sys.version_info.major}.{sys.version_info.minor}", wanted
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
        return "local"
    return "replaced"  # credentials and registry logins: nothing to log in to here


def run_job(
    workflow: dict[str, Any], job_id: str, context: dict[str, Any], repo: Path, machine_env: dict[str, str]
) -> Job:
    job = workflow["jobs"][job_id]
    if not condition(job.get("if"), context):
        return Job("skipped", [Step(s.get("name") or s["uses"], "skipped") for s in job["steps"]])
    env_ctx = {**context, "steps": {}}
    env: dict[str, str] = {}
    for scope in (workflow.get("env", {}), job.get("env", {})):
        env.update({k: substitute(v, {**env_ctx, "env": env}) for k, v in scope.items()})
    process_env = {**machine_env}
    steps: list[Step] = []
    failed = False
    for index, step in enumerate(job["steps"]):
        step_ctx = {**env_ctx, "env": env}
        name = substitute(step.get("name") or step.get("uses"), step_ctx)
        if failed:
            steps.append(Step(name, "not run", step.get("uses")))
            continue
        if not condition(step.get("if"), step_ctx):
            steps.append(Step(name, "skipped", step.get("uses")))
            continue
        inputs = {k: substitute(v, step_ctx) for k, v in step.get("with", {}).items()}
        if "uses" in step:
            steps.append(Step(name, _uses(step, inputs, process_env), step["uses"], inputs))
            continue
        step_env = {**env, **{k: substitute(v, step_ctx) for k, v in step.get("env", {}).items()}}
        script = Path(machine_env["RUNNER_TEMP"]) / f"{job_id}-{index}.sh"
        script.write_text(substitute(step["run"], step_ctx))
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=repo,
            env={**process_env, **step_env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        failed = done.returncode != 0
        steps.append(Step(name, "failure" if failed else "success", None, {}, done.stdout, done.stderr))
    return Job("failure" if failed else "success", steps)


def run_workflow(
    workflow: dict[str, Any],
    context: dict[str, Any],
    repo: Path,
    machine_env: dict[str, str],
    *,
    only: set[str] | None = None,
    done: dict[str, str] | None = None,
) -> dict[str, Job]:
    """Every job (or ``only`` these; ``done`` gives the outcome of needed jobs run elsewhere)."""
    outcomes, results = dict(done or {}), {}
    pending = [j for j in workflow["jobs"] if only is None or j in only]
    while pending:
        job_id = next(j for j in pending if all(n in outcomes for n in _needs(workflow["jobs"][j])))
        pending.remove(job_id)
        needs = _needs(workflow["jobs"][job_id])
        if any(outcomes[n] != "success" for n in needs):
            steps = [Step(s.get("name") or s["uses"], "not run") for s in workflow["jobs"][job_id]["steps"]]
            results[job_id] = Job("skipped", steps)
        else:
            results[job_id] = run_job(workflow, job_id, context, repo, machine_env)
        outcomes[job_id] = results[job_id].outcome
    return results


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def github_context(ref: str, event: str, sha: str, variables: dict[str, str]) -> dict[str, Any]:
    return {
        "github": {
            "ref": ref,
            "event_name": event,
            "sha": sha,
            "repository": "acme/pipelines",
            "repository_owner": "acme",
            "actor": "ci-bot",
        },
        "vars": variables,
        "secrets": SECRETS,
    }


# --- the pipeline repository and the machine ------------------------------------------------------

STUB = """#!{python}
# A recording stand-in for {name}: argv (and the kubeconfig helm was given) to calls.jsonl; S3 objects
# live under s3/ (aws s3 cp ... - reads one, s3api put-object writes one and answers a version id).
import json, os, shutil, sys
from pathlib import Path

root = Path(os.environ["CI_STUB_DIR"])
name, args = Path(sys.argv[0]).name, sys.argv[1:]
kubeconfig = os.environ.get("KUBECONFIG")
call = {{"argv": [name, *args]}}
if name == "helm" and kubeconfig:
    call["kubeconfig"] = Path(kubeconfig).read_text()
with open(root / "calls.jsonl", "a") as log:
    log.write(json.dumps(call) + "\\n")
if name == "aws" and args[:2] == ["s3", "cp"] and args[-1] == "-":
    obj = root / "s3" / args[2].split("/", 3)[3]
    if not obj.exists():
        sys.exit("fatal error: An error occurred (404) when calling the HeadObject operation")
    sys.stdout.buffer.write(obj.read_bytes())
elif name == "aws" and args[:2] == ["s3api", "put-object"]:
    opts = dict(zip(args[2::2], args[3::2]))
    obj = root / "s3" / opts["--key"]
    obj.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(opts["--body"], obj)
    versions = root / "versions.json"
    seen = json.loads(versions.read_text()) if versions.exists() else {{}}
    seen[opts["--key"]] = seen.get(opts["--key"], 0) + 1
    versions.write_text(json.dumps(seen))
    print(f"{{opts['--key']}}-v{{seen[opts['--key']]}}")
elif name == "gcloud" and args[:3] == ["composer", "environments", "describe"]:
    print("gs://europe-west1-acme-composer-bucket/dags")
"""


AWS_CLI = "/usr/bin/aws"  # Debian's awscli (make ci-tools): not a pip one on PATH
AWS = """#!{python}
# The real AWS CLI against loopback endpoints: S3 on a moto server, MWAA on a recorder. The argv
# goes to calls.jsonl like the stubs' (the order of the release job's commands).
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(Path(os.environ["CI_STUB_DIR"]) / "calls.jsonl", "a") as log:
    log.write(json.dumps({{"argv": ["aws", *args]}}) + "\\n")
if args[0] in ("s3", "s3api"):
    endpoint = os.environ["CI_S3_ENDPOINT"]
else:  # the CLI prefixes MWAA's host with "api.": the recorder is its HTTP proxy, no name resolved
    endpoint = "http://mwaa.invalid"
    os.environ["HTTP_PROXY"] = os.environ["CI_MWAA_ENDPOINT"]
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        os.environ.pop(name, None)
os.execv("{cli}", ["aws", "--endpoint-url", endpoint, *args])
"""


@dataclass
class AwsEndpoints:
    """A moto server (S3) and a recorder of MWAA API requests, both on loopback."""

    s3: str
    mwaa: str
    mwaa_requests: list[tuple[str, str, Any]]

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3,
            region_name=VARS["AWS_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture
def aws_endpoints(tmp_path: Path) -> Iterator[AwsEndpoints]:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    from tests.helpers import wait_until
    from tests.promstack import free_port, wait_http

    if not Path(AWS_CLI).exists():
        pytest.fail(f"{AWS_CLI} is missing: `make ci-tools` installs Debian's awscli")
    requests: list[tuple[str, str, Any]] = []

    class Mwaa(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = urlsplit(self.path).path  # a proxy's request line has the whole URL
            requests.append((self.command, path, json.loads(body or b"null")))
            answer = json.dumps({"Arn": f"arn:aws:airflow:eu-west-1:123456789012:environment{path}"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    mwaa = ThreadingHTTPServer(("127.0.0.1", 0), Mwaa)
    threading.Thread(target=mwaa.serve_forever, daemon=True).start()
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", proc=moto)
        endpoints = AwsEndpoints(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mwaa.server_port}", requests)
        s3 = endpoints.client()
        bucket = VARS["MWAA_BUCKET"]
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": VARS["AWS_REGION"]})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})  # MWAA's rule
        s3.put_object(Bucket=bucket, Key="dags/retired_pipeline.py", Body=b"# a DAG file removed from git\n")
        wait_until(lambda: "Contents" in s3.list_objects_v2(Bucket=bucket), 10, "the bucket answers")
        yield endpoints
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        log.close()
        mwaa.shutdown()
        mwaa.server_close()


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def pipeline_repo(root: Path, *, broken: bool = False, plugins: bool = False) -> Path:
    """A team's pipeline repository, committed on main, with a bare ``origin`` next to it."""
    from mlops_dev import datasets

    (root / "dags" / "pipelines").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "mlops_pipelines.py", root / "dags")
    spec = (REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text()
    if broken:
        assert "\nowner: ml-platform\n" in spec
        spec = spec.replace("\nowner: ml-platform\n", "\nowner: ml-platform\ncolour: blue\n")
    (root / "dags" / "pipelines" / "breast_cancer.yaml").write_text(spec)
    (root / "include" / "ci").mkdir(parents=True)
    shutil.copy(REPO / "include" / "ci" / "check.sh", root / "include" / "ci")
    (root / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(TEMPLATE, root / ".github" / "workflows" / "pipelines.yml")
    shutil.copy(REPO / "requirements.txt", root)
    (root / "requirements-dev.txt").write_text(f"ruff=={metadata.version('ruff')}\n")
    (root / ".gitignore").write_text("__pycache__/\n.ruff_cache/\n")
    (root / "Dockerfile").write_text(
        "FROM ghcr.io/acme/airflow-mlops-base:0.1.0\nCOPY dags/ /opt/mlops/dags/\n"
    )
    if plugins:
        (root / "plugins").mkdir()
        (root / "plugins" / "team_macros.py").write_text(
            '"""Macros of the team\'s DAGs."""\n\nfrom __future__ import annotations\n\nFISCAL_YEAR_START = "04-01"\n'
        )
    datasets.materialize("breast_cancer", (root / "tests" / "landing").as_uri())
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "pipelines")
    origin = root.parent / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    _git(root, "remote", "add", "origin", str(origin))
    _git(root, "push", "-q", "origin", "main")
    return root


def machine(
    tmp_path: Path, repo: Path, ref: str, event: str, aws: AwsEndpoints | None = None
) -> dict[str, str]:
    """A runner's environment: no Airflow/MLflow/MLOPS settings of this session (check.sh must set
    its own), no venv on PATH (setup-python puts it there), cloud CLIs as recording stubs; with
    ``aws``, the real AWS CLI on those endpoints instead of the aws stub."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in ("docker", "aws", "gcloud", "helm"):
        text = STUB.format(python=sys.executable, name=name)
        if name == "aws" and aws is not None:
            text = AWS.format(python=sys.executable, cli=AWS_CLI)
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    drop = ("AIRFLOW", "MLOPS_", "MLFLOW_", "PYTEST_", "VIRTUAL_ENV", "GCSFS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != VENV_BIN]
    env["PATH"] = os.pathsep.join([str(stubs), *path])
    for name in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"):
        (runner_temp / name.lower()).touch()
        env[name] = str(runner_temp / name.lower())
    env.update(
        CI="true",
        GITHUB_ACTIONS="true",
        GITHUB_REF=ref,
        GITHUB_EVENT_NAME=event,
        GITHUB_SHA=_git(repo, "rev-parse", "HEAD"),
        GITHUB_REPOSITORY="acme/pipelines",
        GITHUB_WORKSPACE=str(repo),
        RUNNER_TEMP=str(runner_temp),
        CI_STUB_DIR=str(stubs),
    )
    if aws is not None:  # what configure-aws-credentials would export (it is not run here)
        env.update(
            CI_S3_ENDPOINT=aws.s3,
            CI_MWAA_ENDPOINT=aws.mwaa,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION=VARS["AWS_REGION"],
            AWS_DEFAULT_REGION=VARS["AWS_REGION"],
            AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        )
    return env


def stub_calls(env: dict[str, str]) -> list[dict[str, Any]]:
    log = Path(env["CI_STUB_DIR"]) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _refuse_to_change_the_venv(repo: Path) -> None:
    """The install step audits this venv; it must not upgrade anything in a shared one."""
    uv = VENV_BIN / "uv"
    if not uv.exists():
        pytest.fail("uv is not in the venv (make install puts it there); check.sh would fall back to pip")
    dry = subprocess.run(
        [str(uv), "pip", "install", "--dry-run", "--offline", "--python", sys.executable]
        + ["-r", "requirements.txt", "-r", "requirements-dev.txt"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if dry.returncode != 0 or "Would make no changes" not in dry.stderr + dry.stdout:
        pytest.fail(
            f"the venv does not match requirements.txt (run make install); the install step would change it:\n{dry.stderr}"
        )


CHECK_STEPS = [
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "Install the locked dependencies",
    "Lint (ruff)",
    "Validate the pipelines",
    "DagBag",
    "Smoke run (airflow dags test)",
]


# --- the cases --------------------------------------------------------------------------------------


def test_pull_request_runs_the_checks_and_skips_the_release(tmp_path: Path) -> None:
    repo = pipeline_repo(tmp_path / "pipelines")
    _refuse_to_change_the_venv(repo)
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "pipelines.yml").read_text())
    env = machine(tmp_path, repo, "refs/pull/7/merge", "pull_request")
    context = github_context(
        "refs/pull/7/merge", "pull_request", env["GITHUB_SHA"], {**VARS, "DEPLOY_TARGET": "mwaa"}
    )

    jobs = run_workflow(workflow, context, repo, env)

    check = jobs["check"]
    failed = [s for s in check.steps if s.outcome == "failure"]
    assert not failed, "\n".join(f"--- {s.name}\n{s.stdout[-3000:]}\n{s.stderr[-3000:]}" for s in failed)
    assert check.outcomes() == dict(zip(CHECK_STEPS, ["local"] * 2 + ["success"] * 5, strict=True))
    install, lint, validate, dagbag, smoke = check.steps[2:]
    assert re.search(r"(Audited|Checked) \d+ packages", install.stderr), install.stderr
    assert "All checks passed!" in lint.stdout
    assert "1 of 1 pipeline file(s) valid; 3 DAG(s) built" in validate.stdout
    assert "3 DAG(s) from dags; 0 import error(s)" in dagbag.stdout
    log = smoke.stdout + smoke.stderr
    assert f"==> smoke: airflow dags test {SMOKE_DAG} {SMOKE_DATE}" in smoke.stdout
    assert re.search(rf"DagRun Finished: dag_id={SMOKE_DAG}, logical_date={SMOKE_DATE} .*state=success", log)
    # its own throwaway AIRFLOW_HOME, removed afterwards; nothing written into the repository
    (home,) = re.findall(r"airflow db migrate \(SQLite in (\S+)\)", smoke.stdout)
    assert Path(home).name == "airflow" and Path(home).parent.name.startswith("mlops-ci.")
    assert not Path(home).parent.exists()
    assert _git(repo, "status", "--porcelain") == ""
    # the release job is skipped by its if: (a pull request), so nothing was built or deployed
    assert jobs["release"].outcome == "skipped"
    assert set(jobs["release"].outcomes().values()) == {"skipped"}
    assert stub_calls(env) == []


def test_release_runs_on_a_push_to_main_only() -> None:
    workflow = yaml.safe_load(TEMPLATE.read_text())
    release = workflow["jobs"]["release"]
    for ref, event, runs in [
        ("refs/heads/main", "push", True),
        ("refs/heads/main", "pull_request", False),  # a PR whose base is main
        ("refs/heads/feature/drift-window", "push", False),
        ("refs/pull/7/merge", "pull_request", False),
        ("refs/tags/v1.0.0", "push", False),
        ("refs/heads/main", "workflow_dispatch", False),
    ]:
        assert condition(release["if"], github_context(ref, event, "0" * 40, VARS)) is runs, (ref, event)


def test_broken_pipeline_stops_the_check_job_at_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = pipeline_repo(tmp_path / "pipelines", broken=True)
    _refuse_to_change_the_venv(repo)
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "pipelines.yml").read_text())
    env = machine(tmp_path, repo, "refs/heads/main", "push")
    context = github_context("refs/heads/main", "push", env["GITHUB_SHA"], {**VARS, "DEPLOY_TARGET": "mwaa"})

    jobs = run_workflow(workflow, context, repo, env)

    check = jobs["check"]
    assert check.outcomes() == dict(
        zip(
            CHECK_STEPS,
            ["local", "local", "success", "success", "failure", "not run", "not run"],
            strict=True,
        )
    )
    validate = check.step("Validate the pipelines")
    assert "0 of 1 pipeline file(s) valid" in validate.stdout
    # exactly what the DAG folder's loader reports as the import error of dags/mlops_pipelines.py
    from mlops_airflow.loader import load_dags

    monkeypatch.chdir(repo)
    import_error = load_dags(Path("dags/pipelines"))["mlops__invalid_pipelines"].description
    errors = import_error.split("\n", 1)[1]
    assert "dags/pipelines/breast_cancer.yaml is not a valid pipeline spec" in errors
    assert "colour: unknown field" in errors
    assert errors in validate.stderr
    # a failed check never releases, even on main
    assert jobs["release"].outcome == "skipped"
    assert stub_calls(env) == []


def _release(
    tmp_path: Path, repo: Path, target: str, aws: AwsEndpoints | None = None
) -> tuple[Job, dict[str, str]]:
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "pipelines.yml").read_text())
    env = machine(tmp_path, repo, "refs/heads/main", "push", aws)
    context = github_context("refs/heads/main", "push", env["GITHUB_SHA"], {**VARS, "DEPLOY_TARGET": target})
    # the check job is the pull-request case's (steps 1-5 for real); here its outcome is given
    jobs = run_workflow(workflow, context, repo, env, only={"release"}, done={"check": "success"})
    release = jobs["release"]
    failed = [s for s in release.steps if s.outcome == "failure"]
    assert not failed, "\n".join(f"--- {s.name}\n{s.stdout}\n{s.stderr}" for s in failed)
    return release, env


AUTH = {
    "mwaa": {"AWS credentials (OIDC)"},
    "composer": {"Google Cloud credentials (Workload Identity Federation)", "gcloud"},
    "helm": set(),
    "git-sync": set(),
    "none": set(),
}


@pytest.mark.parametrize("target", ["mwaa", "composer", "helm", "git-sync", "none"])
def test_push_to_main_builds_the_image_and_deploys(
    tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    repo = pipeline_repo(tmp_path / "pipelines", plugins=target == "mwaa")
    aws = request.getfixturevalue("aws_endpoints") if target == "mwaa" else None
    release, env = _release(tmp_path, repo, target, aws)
    sha = env["GITHUB_SHA"]

    outcomes = release.outcomes()
    reached = {name for name, outcome in outcomes.items() if outcome == "replaced"}
    assert reached == AUTH[target] | {"Log in to ghcr.io"}
    assert outcomes["Build and push the image"] == "success"
    assert outcomes["Deploy the DAGs"] == ("skipped" if target == "none" else "success")
    if target == "mwaa":
        assert release.step("AWS credentials (OIDC)").inputs == {
            "role-to-assume": VARS["AWS_ROLE_ARN"],
            "aws-region": VARS["AWS_REGION"],
        }
    if target == "composer":
        auth = release.step("Google Cloud credentials (Workload Identity Federation)").inputs
        assert auth["workload_identity_provider"] == VARS["GCP_WORKLOAD_IDENTITY_PROVIDER"]
        assert auth["service_account"] == VARS["GCP_SERVICE_ACCOUNT"]
    assert release.step("Log in to ghcr.io").inputs == {
        "registry": "ghcr.io",
        "username": "ci-bot",
        "password": SECRETS["GITHUB_TOKEN"],
    }

    calls = [c["argv"] for c in stub_calls(env)]
    image = f"{VARS['IMAGE_REPOSITORY']}:{sha}"
    assert calls[:2] == [["docker", "build", "-t", image, "."], ["docker", "push", image]]
    if target == "mwaa":
        assert aws is not None
        _assert_mwaa_deployed(tmp_path, repo, aws)
    else:
        assert calls[2:] == EXPECTED_DEPLOY[target](sha)
    if target == "helm":
        assert stub_calls(env)[-1]["kubeconfig"] == SECRETS["KUBECONFIG"] + "\n"
    if target == "git-sync":
        assert _git(tmp_path / "origin.git", "rev-parse", "refs/heads/airflow-dags") == sha


EXPECTED_DEPLOY = {
    "composer": lambda sha: [
        ["gcloud", "composer", "environments", "describe", "acme-composer", "--location", "europe-west1"]
        + ["--format=value(config.dagGcsPrefix)"],
        ["gcloud", "storage", "rsync", "dags", "gs://europe-west1-acme-composer-bucket/dags", "--recursive"]
        + [
            "--delete-unmatched-destination-objects",
            r"--exclude=(.*/)?__pycache__/.*|airflow_monitoring\.py$",
        ],
    ],
    "helm": lambda sha: [
        ["helm", "repo", "add", "apache-airflow", "https://airflow.apache.org", "--force-update"],
        ["helm", "upgrade", "--install", "airflow", "apache-airflow/airflow", "--namespace", "airflow"]
        + ["--reuse-values", "--set", "images.airflow.repository=ghcr.io/acme/airflow-mlops"]
        + ["--set", f"images.airflow.tag={sha}", "--wait", "--timeout", "15m"],
    ],
    "git-sync": lambda sha: [],
    "none": lambda sha: [],
}


def _objects(aws: AwsEndpoints, prefix: str = "") -> dict[str, bytes]:
    s3, bucket = aws.client(), VARS["MWAA_BUCKET"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _versions(aws: AwsEndpoints) -> list[tuple[str, str]]:
    listed = aws.client().list_object_versions(Bucket=VARS["MWAA_BUCKET"]).get("Versions", [])
    return sorted((v["Key"], v["VersionId"]) for v in listed)


def _assert_mwaa_deployed(tmp_path: Path, repo: Path, aws: AwsEndpoints) -> None:
    """The effect of the release job on the bucket and the environment, as MWAA documents it: the
    DAG folder mirrored to s3://<bucket>/dags/ (a file gone from git is gone from the bucket),
    requirements.txt and plugins.zip uploaded to the versioned bucket, and UpdateEnvironment naming
    exactly the object versions the bucket holds."""
    local = {
        f"dags/{p.relative_to(repo / 'dags').as_posix()}": p.read_bytes()
        for p in (repo / "dags").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert _objects(aws, "dags/") == local  # retired_pipeline.py deleted, nothing compiled uploaded
    top = _objects(aws)
    assert top["requirements.txt"] == (repo / "requirements.txt").read_bytes()
    with zipfile.ZipFile(io.BytesIO(top["plugins.zip"])) as plugins:
        assert plugins.namelist() == ["team_macros.py"]
    s3 = aws.client()
    current = {
        key: s3.head_object(Bucket=VARS["MWAA_BUCKET"], Key=key)["VersionId"]
        for key in ("requirements.txt", "plugins.zip")
    }
    # the UpdateEnvironment request as the AWS CLI serialised it (MWAA API: PATCH /environments/{Name})
    assert aws.mwaa_requests == [
        (
            "PATCH",
            f"/environments/{VARS['MWAA_ENVIRONMENT']}",
            {
                "RequirementsS3Path": "requirements.txt",
                "RequirementsS3ObjectVersion": current["requirements.txt"],
                "PluginsS3Path": "plugins.zip",
                "PluginsS3ObjectVersion": current["plugins.zip"],
            },
        )
    ]
    # the same commit again: the DAGs sync, but requirements.txt and plugins.zip are unchanged (the
    # zip is reproducible), so no new object version and no environment update (no MWAA restart)
    versions = _versions(aws)
    release, _ = _release(tmp_path, repo, "mwaa", aws)
    assert (
        "requirements.txt and plugins.zip unchanged: no environment update"
        in release.step("Deploy the DAGs").stdout
    )
    assert _versions(aws) == versions
    assert len(aws.mwaa_requests) == 1
