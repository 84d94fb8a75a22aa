"""The compose stack's secrets: generate them once, and refuse to start with weak ones.

    python include/compose/stack_secrets.py generate .local/secrets   # on the host, once
    python include/compose/stack_secrets.py check /run/secrets        # the secrets-check service

``generate`` writes every missing secret as a random value (existing files are never touched) into
a directory only its owner can list. ``check`` exits 1, naming each bad secret and the fix, when a
secret is missing, empty, a known placeholder (``change-me``, ``minioadmin``...), too short, not a
single line of ``[A-Za-z0-9_-]`` (the Fernet key excepted: secrets are embedded in URLs, SQL and config files unquoted),
reused by another secret, or, for the Fernet key, not a valid Fernet key. Every other service of
the stack waits for that check (``depends_on: condition: service_completed_successfully``).
Standard library only: it runs in any Python 3.9+.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import secrets
import string
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    """What one secret file must hold."""

    min_length: int
    kind: str = "password"  # password | name | fernet

    def generate(self) -> str:
        value = "-"
        while value.startswith("-"):  # a leading '-' reads as an option on a command line
            value = self._random()
        return value

    def _random(self) -> str:
        if self.kind == "fernet":
            return base64.urlsafe_b64encode(os.urandom(32)).decode()
        if self.kind == "name":  # MinIO access keys: letters and digits
            return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(16))
        return secrets.token_urlsafe(max(32, self.min_length))


# name -> rule. The services that receive each secret are listed in docker-compose.yaml.
RULES: dict[str, Rule] = {
    "postgres_password": Rule(16),
    "mlflow_db_password": Rule(16),
    "redis_password": Rule(16),
    "airflow_fernet_key": Rule(44, "fernet"),
    "airflow_jwt_secret": Rule(32),
    "airflow_api_secret_key": Rule(32),
    "airflow_admin_password": Rule(16),
    "minio_root_user": Rule(8, "name"),
    "minio_root_password": Rule(16),
    "mlflow_s3_access_key": Rule(8, "name"),
    "mlflow_s3_secret_key": Rule(16),
    "mlflow_admin_password": Rule(16),
    "mlflow_airflow_password": Rule(16),
    "mlflow_release_password": Rule(16),
    "mlops_release_key": Rule(32),
    "mlflow_flask_secret_key": Rule(32),
    "grafana_admin_password": Rule(16),
    # basic auth of the Pushgateway (pushes from the workers, Prometheus' scrape)
    "pushgateway_password": Rule(16),
}

# Values shipped by docs, images and examples (compared lower-cased, '-' and '_' removed).
PLACEHOLDERS = {
    "changeme", "changeit", "password", "passw0rd", "secret", "admin", "administrator", "root",
    "minioadmin", "airflow", "mlflow", "redis", "postgres", "example", "test", "default",
    "placeholder", "todo", "xxx", "none", "null", "mysecretkey", "secretkey",
    "password1234567890", "replaceme",
}  # fmt: skip
PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "example", "yourpassword", "secretkey")
ALLOWED = re.compile(r"[A-Za-z0-9_-]+")


def problems(name: str, value: str, rule: Rule) -> list[str]:
    """Why ``value`` may not be used as secret ``name`` (empty when it may)."""
    if not value:
        return [f"{name}: empty"]
    folded = value.lower().replace("-", "").replace("_", "")
    if folded in PLACEHOLDERS or any(word in folded for word in PLACEHOLDER_WORDS):
        return [f"{name}: {value!r} is a placeholder"]
    found = []
    if rule.kind != "fernet" and not ALLOWED.fullmatch(value):
        found.append(f"{name}: only letters, digits, '-' and '_' are allowed (one line)")
    if value.startswith("-"):
        found.append(f"{name}: must not start with '-' (it would read as a command-line option)")
    if len(set(value)) < 6:
        found.append(f"{name}: too few distinct characters")
    if rule.kind == "fernet":
        try:
            raw = base64.urlsafe_b64decode(value.encode())
            ok = len(raw) == 32 and base64.urlsafe_b64encode(raw).decode() == value
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            found.append(f"{name}: not a Fernet key (32 url-safe base64-encoded bytes)")
    elif len(value) < rule.min_length:
        found.append(f"{name}: {len(value)} characters, at least {rule.min_length} needed")
    return found


def check(directory: Path) -> list[str]:
    """Every problem of the secrets in ``directory``; a trailing newline in a file is ignored."""
    found: list[str] = []
    seen: dict[str, str] = {}
    for name, rule in RULES.items():
        path = directory / name
        if not path.is_file():
            found.append(f"{name}: missing ({path})")
            continue
        value = path.read_text(errors="replace").removesuffix("\n").removesuffix("\r")
        found += problems(name, value, rule)
        if value and value in seen:
            found.append(f"{name}: same value as {seen[value]}; every secret must be distinct")
        seen.setdefault(value, name)
    return found


def generate(directory: Path) -> list[str]:
    """Write every missing secret of ``RULES`` into ``directory``; return the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    # Only the owner may list the directory. The files themselves stay world-readable because
    # compose bind-mounts them as they are and the services run as other uids (airflow 50000...).
    directory.chmod(0o700)
    written = []
    for name, rule in RULES.items():
        path = directory / name
        if path.exists():
            continue
        path.write_text(rule.generate())
        path.chmod(0o644)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "generate"])
    parser.add_argument("directory", type=Path, nargs="?", default=Path("/run/secrets"))
    args = parser.parse_args(argv)
    if args.command == "generate":
        written = generate(args.directory)
        print(f"wrote {len(written)} new secret(s) to {args.directory}: {', '.join(written) or '-'}")
        return 0
    found = check(args.directory)
    for line in found:
        print(f"REFUSED {line}", file=sys.stderr)
    if found:
        print(
            "The stack does not start with these secrets. Create missing ones with\n"
            "  python include/compose/stack_secrets.py generate .local/secrets\n"
            "or replace a bad file with a random value of the same kind.",
            file=sys.stderr,
        )
        return 1
    print(f"all {len(RULES)} secrets pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
