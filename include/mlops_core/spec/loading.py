"""Reading a pipeline YAML: :func:`load_spec` (a file) and :func:`parse_spec` (a parsed mapping),
and :class:`SpecError`, which names the file, each bad field and what is allowed.

The env-reference rule (:func:`check_env_refs`) runs before pydantic, on the raw mapping.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlops_core.base import envref
from mlops_core.spec.pipeline import PipelineSpec

MAX_YAML_BYTES = 256 * 1024

# libyaml's C loader parses ~10x faster than the pure-Python one; both are "safe" (no object tags).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_env_refs(data: Any, declared: set[str], where: str = "") -> list[str]:
    """``${VAR}`` references a YAML may use: ``MLOPS_*`` and the names listed under ``env:``.

    Never names that look like credentials or Airflow settings, declared or not, so a YAML
    author cannot copy a secret into a URI, a log line or the lake. Every string is checked
    against :mod:`mlops_core.base.envref`'s grammar (no nesting, no unclosed ``${``), the one
    :func:`mlops_core.base.settings.expand` applies at run time.
    """
    problems: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            problems += check_env_refs(value, declared, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems += check_env_refs(value, declared, f"{where}.{i}")
    elif isinstance(data, str):
        # the grammar and the names of mlops_core.base.envref: what the run-time expander accepts
        problems += [f"{where}: {p}" for p in envref.problems(data, declared)]
    return problems


class SpecError(ValueError):
    """A pipeline YAML that cannot be used; the message names the file, each field and the fix."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(
            f"{source} is not a valid pipeline spec:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _allowed_fields(loc: tuple[Any, ...]) -> list[str] | None:
    model: Any = PipelineSpec
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return None
    return list(model.model_fields) if model is not None else None


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "lambda"))))
    where = ".".join(str(p) for p in loc) or "pipeline"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_fields(loc)
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown field{hint}"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a whole-pipeline rule: its message starts with the field it is about
        return msg
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
    return f"{where}: {msg}{shown}"


def parse_spec(data: Any, source: str = "<spec>") -> PipelineSpec:
    """Validate a mapping (the parsed YAML) into a :class:`PipelineSpec` or raise :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(source, [f"the file must hold a mapping of fields, got {type(data).__name__}"])
    declared = {str(n) for n in data.get("env") or [] if isinstance(n, str)}
    problems = check_env_refs(data, declared)
    if problems:
        raise SpecError(source, problems)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, [_describe(dict(e)) for e in exc.errors()]) from None


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate one pipeline YAML."""
    path = Path(path)
    text = path.read_text()
    if len(text.encode()) > MAX_YAML_BYTES:
        raise SpecError(
            str(path),
            [f"the file is {len(text.encode())} bytes; a pipeline YAML may hold at most {MAX_YAML_BYTES}"],
        )
    if text.count("*") > 0 and re.search(r"(^|[\s\[{,:-])\*[A-Za-z0-9_-]+", text, re.M):
        raise SpecError(
            str(path), ["YAML aliases (*name) are not allowed in a pipeline spec; write the values out"]
        )
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    spec = parse_spec(data, str(path))
    if spec.name != path.stem:
        raise SpecError(
            str(path), [f"name: {spec.name!r} must equal the file name {path.stem!r} (one pipeline per file)"]
        )
    return spec
