"""Release authority: decisions only the release steps can make, sealed so no other task can forge them.

The gate decision and a person's approval end up as tags on an MLflow model version. A tag is
a value anyone with write access to the registry can set, so the value alone never decides a
deploy. The release steps (gate, register, approval, deploy, smoke test; the ``release`` Celery
queue in a team deployment) hold a key, ``$MLOPS_RELEASE_KEY``, that no other worker holds. They
seal each decision with it (HMAC-SHA256 over the fields that make the decision: model, version,
the MLflow run that trained it, outcome, the champion it was evaluated against, the artifact
digest; for an approval, who and when), and deploy verifies the seal against the version as
the registry holds it (the version's own ``run_id``, not a tag). One ``set_model_version_tag``
of ``mlops.gate=promote`` or ``mlops.approval=approved`` breaks the seal, so deploy refuses.

The second lock is the registry's: in a team deployment the MLflow server runs with basic-auth,
and only the release identity may edit registered models (README "Security catalogue").

Without ``$MLOPS_RELEASE_KEY`` (the embedded default: one machine, one trust zone) the key is a
random file under the local directory, created on first use, readable by its owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from typing import TYPE_CHECKING, Any

from mlops_core.base import settings

if TYPE_CHECKING:
    from pathlib import Path

KEY_ENV = "MLOPS_RELEASE_KEY"
QUEUE_ENV = "MLOPS_RELEASE_QUEUE"
DEFAULT_QUEUE = "release"
GATE_SEAL_TAG = "mlops.gate_seal"  # on the training run: the gate's decision, sealed
RELEASE_SEAL_TAG = "mlops.release_seal"  # on the version: decision + artifact digest, sealed
APPROVAL_SEAL_TAG = "mlops.approval_seal"  # on the version: the person's answer, sealed
_MIN_KEY_CHARS = 32


class ReleaseKeyError(RuntimeError):
    """The release key is missing or too short where one is required."""


def queue() -> str | None:
    """The Celery queue of the release steps: ``$MLOPS_RELEASE_QUEUE``, default ``release``.

    An empty value puts them on the default queue (one trust zone: every worker may release).
    Executors without queues (Local, the embedded default) ignore it.
    """
    value = os.environ.get(QUEUE_ENV, DEFAULT_QUEUE).strip()
    return value or None


def _key_file() -> Path:
    return settings.local_dir() / "release.key"


def key() -> bytes:
    """``$MLOPS_RELEASE_KEY``, else this machine's key file (created once, mode 0600)."""
    env = os.environ.get(KEY_ENV)
    if env is not None:
        if len(env) < _MIN_KEY_CHARS:
            raise ReleaseKeyError(
                f"{KEY_ENV} has {len(env)} characters; use at least {_MIN_KEY_CHARS} random ones "
                "(python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return env.encode()
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting at once agree on the first key written
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    text = path.read_text().strip()
    if len(text) < _MIN_KEY_CHARS:
        raise ReleaseKeyError(
            f"the release key file {path} is empty or truncated; delete it to make a new one"
        )
    return text.encode()


def _message(kind: str, fields: dict[str, Any]) -> bytes:
    body = {"kind": kind, **{k: "" if v is None else str(v) for k, v in fields.items()}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(kind: str, **fields: Any) -> str:
    """HMAC-SHA256 (hex) of ``kind`` and ``fields`` under the release key."""
    return hmac.new(key(), _message(kind, fields), hashlib.sha256).hexdigest()


def verify(signature: str | None, kind: str, **fields: Any) -> bool:
    """True only when ``signature`` is the seal of exactly these fields (constant-time compare)."""
    if not signature:
        return False
    return hmac.compare_digest(str(signature), seal(kind, **fields))


def gate_fields(model: str, run_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """What a gate seal covers, from the decision tags (:func:`mlops_core.lifecycle.gate`)."""
    return {
        "model": model,
        "run_id": run_id,
        "outcome": tags.get("mlops.gate"),
        "evaluated_against": tags.get("mlops.evaluated_against"),
        "forced_by": tags.get("mlops.forced_by"),
    }


def release_fields(model: str, version: str, run_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """What a version's release seal covers: the gate's fields, the version and its artifact digest."""
    return {
        **gate_fields(model, run_id, tags),
        "version": version,
        "digest": tags.get("mlops.model_sha256"),
    }


def approval_fields(model: str, version: str, tags: dict[str, str]) -> dict[str, Any]:
    """What an approval seal covers: the answer, who gave it and when, for this version."""
    return {
        "model": model,
        "version": version,
        "outcome": tags.get("mlops.approval"),
        "by": tags.get("mlops.approved_by"),
        "at": tags.get("mlops.approved_at"),
    }
