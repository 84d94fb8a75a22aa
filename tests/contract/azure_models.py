"""Azure request and response bodies checked against the service's own API description.

**Azure ML (ARM).** azure-ai-ml (dev lock) ships, per API version, the msrest models and the
request builders AutoRest generated from the service's REST spec
(``azure/ai/ml/_restclient/<version>/{models,operations}``). From them this module takes, for
exactly the ``api-version`` the package sends (:data:`mlops_core.clouds.azure.client.API_VERSION`;
the one call sent with :data:`~mlops_core.clouds.azure.client.PREVIEW_API_VERSION`, a mirrored
shadow's deployment with its data collector, is held to that version's: :func:`api_version_of`):

* the URL templates, HTTP methods and path-parameter constraints of each operation (the
  ``build_*_request`` functions), the body model it serializes, the model it deserializes and
  the status codes it accepts (the operation methods that call those builders);
* each model's JSON keys and types (``_attribute_map``, flattened ``properties.x`` keys
  included), ``required`` / ``readonly`` / length / pattern / range constraints (``_validation``),
  polymorphic discriminators (``_subtype_map``: ``endpointComputeType: Managed`` ->
  ``ManagedOnlineDeployment``, ``jobType: Command`` -> ``CommandJob``) and the enums each
  attribute declares (its ``:vartype``).

A body is walked recursively: unknown keys, wrong types, missing required keys, read-only keys
in a request, unknown discriminators and values outside a declared enum are errors that name
their JSON path. Strictness is deliberate: the service ignores or rejects what its description
does not have, and a test that accepts it proves nothing.

``import azure.ai.ml`` fails here (its package ``__init__`` needs marshmallow<4, the runtime lock
has 4), so :func:`rest_package` loads the generated modules under a private package name without
running that ``__init__``; nothing else in the process sees them.

**Azure Monitor metric alert rules (ARM).** azure-mgmt-monitor (dev lock) ships the msrest models
and request builders generated from ``Microsoft.Insights`` ``metricAlerts`` 2018-03-01: the same
walk checks a rule body against ``MetricAlertResource`` (:func:`metric_alert_errors`), and
:func:`metric_alert_request` builds the create-or-update request (method, URL, api-version) the
generated client would send.

**Documented schemas** (no published model exists in the installed packages): ARM's
long-running-operation status, Azure Monitor custom metrics, the Azure ML scoring call of an
MLflow model (no-code deployment) and the Microsoft identity platform's client-credentials token
request. Each is written out below with the page it comes from; say "checked against the
documented schema" of these, not "validated against a published model".
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mlops_core.clouds.azure.client import API_VERSION, PREVIEW_API_VERSION

_PRIVATE = "_mlops_azure_rest"  # where the generated modules live in sys.modules

# The operations the package calls: (operations module, builder). The method, URL, body model,
# response model and accepted statuses all come from the generated code itself.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("_workspaces_operations", "build_get_request"),
    ("_jobs_operations", "build_get_request"),
    ("_jobs_operations", "build_create_or_update_request"),
    ("_model_versions_operations", "build_get_request"),
    ("_model_versions_operations", "build_create_or_update_request"),
    ("_online_endpoints_operations", "build_get_request"),
    ("_online_endpoints_operations", "build_create_or_update_request"),
    ("_online_endpoints_operations", "build_list_keys_request"),
    ("_online_deployments_operations", "build_get_request"),
    ("_online_deployments_operations", "build_create_or_update_request"),
    ("_online_deployments_operations", "build_delete_request"),
    ("_datastores_operations", "build_get_request"),
    ("_data_versions_operations", "build_create_or_update_request"),
)

# The one call sent with a preview api-version (a mirrored shadow's deployment with its data
# collector): method and workspace-relative path. Any other request is held to API_VERSION.
PREVIEW_CALLS = ((PREVIEW_API_VERSION, "PUT", re.compile(r".*/onlineEndpoints/[^/]+/deployments/[^/]+")),)


class ModelViolation(AssertionError):
    """A body or URL that the API description does not allow; ``errors`` name the JSON paths."""

    def __init__(self, what: str, errors: list[str]):
        self.errors = errors
        super().__init__(f"{what}: " + "; ".join(errors))


# -- loading the generated code ---------------------------------------------------------------------


def version_dir(api_version: str) -> str:
    """``2023-10-01`` -> ``v2023_10_01`` (the folder azure-ai-ml generates per API version)."""
    return "v" + api_version.replace("-", "_")


@functools.cache
def rest_package(api_version: str = API_VERSION) -> Path:
    """The folder of the generated client of ``api_version``, registered as a private package.

    A missing folder is an error that lists the versions present: the package must send a
    version whose description is here.
    """
    spec = importlib.util.find_spec("azure.ai.ml")  # locates the package, does not run its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("azure-ai-ml is not installed (it is in requirements-dev.txt)")
    root = Path(next(iter(spec.submodule_search_locations))) / "_restclient"
    folder = root / version_dir(api_version)
    if not (folder / "models" / "_models_py3.py").exists():
        present = sorted(p.name for p in root.glob("v20*") if (p / "models").is_dir())
        raise RuntimeError(f"azure-ai-ml has no REST models of api-version {api_version}; it has {present}")
    for name, path in ((_PRIVATE, root), (f"{_PRIVATE}.{folder.name}", folder)):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            package.__package__ = name
            sys.modules[name] = package
    return folder


MONITOR = "azure-mgmt-monitor"  # the "api_version" key of Azure Monitor's models in this module


@functools.cache
def models(api_version: str = API_VERSION) -> types.ModuleType:
    """The generated ``models`` module of ``api_version`` (msrest model classes and enums);
    :data:`MONITOR`: azure-mgmt-monitor's (metricAlerts 2018-03-01)."""
    if api_version == MONITOR:
        return importlib.import_module("azure.mgmt.monitor.models")
    folder = rest_package(api_version)
    return importlib.import_module(f"{_PRIVATE}.{folder.name}.models")


# -- fields of a model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    attr: str
    path: tuple[str, ...]  # JSON keys from the model's object: ("properties", "traffic") when flattened
    type: str
    required: bool
    readonly: bool
    rules: dict[str, Any]
    enum: tuple[str, ...] | None


def _split_key(key: str) -> tuple[str, ...]:
    """msrest's flattening: unescaped dots nest, ``\\.`` is a literal dot."""
    return tuple(part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key))


def _vartypes(cls: type) -> dict[str, str]:
    """``:vartype attr: ...`` of the class docstring (one line each, wrapped lines joined)."""
    doc = inspect.getdoc(cls) or ""
    found = re.findall(r":vartype (\w+):(.*?)(?=\n\s*:(?:ivar|vartype) |\Z)", doc, re.S)
    return {name: " ".join(text.split()) for name, text in found}


def _enum_values(module: types.ModuleType, vartype: str) -> tuple[str, ...] | None:
    """The values of the generated enum a ``:vartype`` names (``str or ~...models.JobStatus``)."""
    for name in re.findall(r"~[\w.]+\.models\.(\w+)", vartype):
        candidate = getattr(module, name, None)
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return tuple(str(member.value) for member in candidate)
    return None


@functools.cache
def fields(cls: type, api_version: str = API_VERSION) -> tuple[Field, ...]:
    module = models(api_version)
    docs = _vartypes(cls)
    validation = getattr(cls, "_validation", {}) or {}
    out = []
    for attr, spec in cls._attribute_map.items():  # type: ignore[attr-defined]
        rules = dict(validation.get(attr, {}))
        out.append(
            Field(
                attr,
                _split_key(spec["key"]) if spec["key"] else (),
                spec["type"],
                bool(rules.pop("required", False)),
                bool(rules.pop("readonly", False)),
                rules,
                _enum_values(module, docs.get(attr, "")),
            )
        )
    return tuple(out)


# -- walking a body ---------------------------------------------------------------------------------

_DURATION = re.compile(r"^-?P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


@dataclass
class _Walk:
    module: types.ModuleType
    request: bool  # a request body (read-only keys refused, nulls refused) or a response
    api_version: str
    errors: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path or '$'}: {message}")

    def resolve(self, cls: type, data: dict[str, Any], path: str) -> type | None:
        """Follow ``_subtype_map`` discriminators down to the concrete model (None: reported)."""
        while True:
            subtypes = cls.__dict__.get("_subtype_map") or {}
            if not subtypes:
                return cls
            attr, mapping = next(iter(subtypes.items()))
            key = next(f.path[-1] for f in fields(cls, self.api_version) if f.attr == attr)
            value = data.get(key)
            if value is None:
                self.error(
                    f"{path}.{key}", f"discriminator of {cls.__name__} missing (one of {', '.join(mapping)})"
                )
                return None
            if value not in mapping:
                self.error(
                    f"{path}.{key}",
                    f"{value!r} is not a {cls.__name__} kind; the description knows {', '.join(mapping)}",
                )
                return None
            sub = getattr(self.module, mapping[value])
            if sub is cls:
                return cls
            cls = sub

    def model(self, value: Any, name: str, path: str) -> None:
        cls = getattr(self.module, name, None)
        if cls is None:
            self.error(path, f"the description names an unknown model {name}")
            return
        if not isinstance(value, dict):
            self.error(path, f"expected an object ({name}), got {type(value).__name__}")
            return
        concrete = self.resolve(cls, value, path)
        if concrete is not None:
            self.fields(value, fields(concrete, self.api_version), (), path, concrete.__name__)

    def fields(
        self,
        data: dict[str, Any],
        all_fields: tuple[Field, ...],
        prefix: tuple[str, ...],
        path: str,
        owner: str,
    ) -> None:
        level = [f for f in all_fields if f.path[: len(prefix)] == prefix and len(f.path) > len(prefix)]
        open_ended = any(not f.path for f in all_fields)  # additional_properties (key "")
        names = {f.path[len(prefix)] for f in level}
        for key, value in data.items():
            here = f"{path}.{key}"
            leaf = next((f for f in level if f.path == (*prefix, key)), None)
            if leaf is not None:
                self.field(leaf, value, here)
            elif key in names:  # a flattened group ("properties" of "properties.x" keys)
                if isinstance(value, dict):
                    self.fields(value, all_fields, (*prefix, key), here, owner)
                else:
                    self.error(here, f"expected an object, got {type(value).__name__}")
            elif not open_ended:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hint = (
                    f" (did you mean {close[0]!r}?)" if close else f"; {owner} has {', '.join(sorted(names))}"
                )
                self.error(here, f"unknown key{hint}")
        for f in level:
            if f.required and not (self.request and f.readonly):
                rest = f.path[len(prefix) :]
                node: Any = data
                for part in rest:
                    if not isinstance(node, dict) or part not in node:
                        self.error(f"{path}.{'.'.join(rest)}", f"required by {owner} but missing")
                        break
                    node = node[part]

    def field(self, f: Field, value: Any, path: str) -> None:
        if self.request and f.readonly:
            self.error(path, "read-only: the service sets it, a request must not send it")
            return
        if value is None:
            if self.request or f.required:
                self.error(path, "null (omit the key instead)" if not f.required else "required but null")
            return
        self.value(value, f.type, path, f)

    def value(self, value: Any, kind: str, path: str, f: Field | None) -> None:  # noqa: C901 - one branch per msrest type
        if value is None:
            if self.request:
                self.error(path, "null (omit the key instead)")
            return
        if kind.startswith("[") and kind.endswith("]"):
            if not isinstance(value, list):
                self.error(path, f"expected a list, got {type(value).__name__}")
                return
            for rule, limit in (f.rules if f else {}).items():
                if rule == "min_items" and len(value) < limit or rule == "max_items" and len(value) > limit:
                    self.error(path, f"{len(value)} items violates {rule} {limit}")
            for i, item in enumerate(value):
                self.value(item, kind[1:-1], f"{path}[{i}]", f)
            return
        if kind.startswith("{") and kind.endswith("}"):
            if not isinstance(value, dict):
                self.error(path, f"expected an object (map), got {type(value).__name__}")
                return
            for key, item in value.items():
                self.value(item, kind[1:-1], f"{path}.{key}", None)
            return
        scalar: dict[str, type | tuple[type, ...]] = {
            "str": str,
            "int": int,
            "long": int,
            "float": (int, float),
            "decimal": (int, float),
            "bool": bool,
            "duration": str,
            "iso-8601": str,
            "rfc-1123": str,
            "date": str,
            "bytearray": str,
            "base64": str,
            "unix-time": int,
        }
        if kind == "object":
            return
        if kind not in scalar:
            self.model(value, kind, path)
            return
        if not isinstance(value, scalar[kind]) or (kind != "bool" and isinstance(value, bool)):
            self.error(path, f"expected {kind}, got {type(value).__name__} {value!r}"[:200])
            return
        if kind == "duration" and not _DURATION.match(str(value)):
            self.error(path, f"{value!r} is not an ISO 8601 duration")
        if kind == "iso-8601":
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                self.error(path, f"{value!r} is not an ISO 8601 date-time")
        if f is not None:
            self.rules(value, f, path)

    def rules(self, value: Any, f: Field, path: str) -> None:
        if f.enum is not None and isinstance(value, str) and value not in f.enum:
            self.error(path, f"{value!r} is not one of {', '.join(f.enum)}")
        for rule, limit in f.rules.items():
            bad = (
                (rule == "min_length" and len(value) < limit)
                or (rule == "max_length" and len(value) > limit)
                or (rule == "pattern" and not re.search(limit, value))
                or (rule == "minimum" and value < limit)
                or (rule == "maximum" and value > limit)
                or (rule == "exclusive_minimum" and value <= limit)
                or (rule == "exclusive_maximum" and value >= limit)
            )
            if bad:
                self.error(path, f"{value!r} violates {rule} {limit!r}")


def model_errors(
    name: str, body: Any, *, request: bool, api_version: str = API_VERSION, path: str = "$"
) -> list[str]:
    """What is wrong with ``body`` as model ``name`` (a request body when ``request``); [] if nothing."""
    walk = _Walk(models(api_version), request, api_version)
    walk.model(body, name, path)
    return walk.errors


def metric_alert_errors(body: Any) -> list[str]:
    """What is wrong with ``body`` as the PUT body of a metric alert rule (azure-mgmt-monitor's
    ``MetricAlertResource``, generated from metricAlerts 2018-03-01); [] if nothing."""
    return model_errors("MetricAlertResource", body, request=True, api_version=MONITOR)


def metric_alert_request(
    subscription: str, resource_group: str, rule: str
) -> tuple[str, str, dict[str, str]]:
    """``(method, path, query)`` of the metric-alert create-or-update request, from
    azure-mgmt-monitor's generated request builder (its api-version is that client's own)."""
    from azure.mgmt.monitor.operations._metric_alerts_operations import build_create_or_update_request

    request = build_create_or_update_request(resource_group, rule, subscription)
    parts = urlsplit(request.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return request.method, parts.path, query


# -- the operations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One REST operation as the generated client describes it."""

    builder: str
    method: str
    template: str  # "/subscriptions/{subscriptionId}/.../onlineEndpoints/{endpointName}"
    params: dict[str, dict[str, Any]]  # path parameter -> constraints (pattern, min_length...)
    default_api_version: str
    body: str | None  # model the client serializes as the request body
    response: dict[int, str | None]  # accepted status -> model deserialized (None: no body)

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"(\{\w+\})", self.template)
        text = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(text, re.I)


def _const(node: ast.AST | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


def _builder(fn: ast.FunctionDef) -> tuple[str, str, dict[str, dict[str, Any]], str]:
    """(method, URL template, path parameter constraints, default api-version) of a ``build_*_request``."""
    method = template = default = ""
    params: dict[str, dict[str, Any]] = {}
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name == "HttpRequest":
            method = next(str(_const(k.value)) for k in node.keywords if k.arg == "method")
        elif name == "pop" and node.args and _const(node.args[0]) == "template_url":
            template = str(_const(node.args[1]))
        elif name == "pop" and node.args and _const(node.args[0]) == "api-version":
            default = str(_const(node.args[1]))
    for node in ast.walk(fn):  # path_format_arguments = {"endpointName": _SERIALIZER.url(..., pattern=...)}
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(value, ast.Call) and getattr(value.func, "attr", "") == "url":
                    params[str(_const(key))] = {k.arg: _const(k.value) for k in value.keywords if k.arg}
    return method, template, params, default


def _calls(fn: ast.FunctionDef) -> tuple[str | None, dict[int, str | None], list[str]]:
    """(body model, {status: response model}, builders called) of an operation method."""
    body, deserialized, statuses, builders = None, [], [], []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name == "body" and len(node.args) == 2:
                body = _const(node.args[1])
            elif name == "_deserialize" and node.args and isinstance(_const(node.args[0]), str):
                deserialized.append(str(_const(node.args[0])))
            elif name.startswith("build_") and name.endswith(("_request", "_request_initial")):
                builders.append(name)
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.NotIn):
            if isinstance(node.comparators[0], ast.List):
                statuses = [int(_const(e)) for e in node.comparators[0].elts]
    resource = next((d for d in deserialized if d[:1].isupper()), None)  # not "duration", "str"
    return body, {s: resource for s in statuses}, builders


@functools.cache
def operations(api_version: str = API_VERSION) -> tuple[Operation, ...]:
    """The operations of :data:`OPERATIONS` as the generated code of ``api_version`` describes them."""
    folder = rest_package(api_version)
    out = []
    for module, builder in OPERATIONS:
        tree = ast.parse((folder / "operations" / f"{module}.py").read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        # (newer versions name the builders of long-running operations ``build_<op>_request_initial``)
        found = next(f for f in functions if f.name in (builder, f"{builder}_initial"))
        method, template, params, default = _builder(found)
        callers = [f for f in functions if found.name in _calls(f)[2] and not f.name.startswith("build_")]
        if not callers:
            raise RuntimeError(f"no operation of {module} calls {builder}")
        body, response, _ = _calls(callers[0])
        if method == "DELETE":
            response = {s: None for s in response}
        out.append(Operation(builder, method, template, params, default, body, response))
    return tuple(out)


def operation_for(method: str, path: str, api_version: str = API_VERSION) -> tuple[Operation, dict[str, str]]:
    """The operation ``method path`` is, and its path parameters; :class:`ModelViolation` if none."""
    candidates = []
    for op in operations(api_version):
        match = op.regex.fullmatch(path)
        if match:
            candidates.append(op)
            if op.method == method:
                return op, match.groupdict()
    known = ", ".join(sorted({o.method for o in candidates})) or "none"
    raise ModelViolation(
        f"{method} {path}",
        [f"no operation of api-version {api_version} is {method} on this path (methods: {known})"],
    )


def path_errors(op: Operation, params: dict[str, str]) -> list[str]:
    errors = []
    for name, value in params.items():
        rules = op.params.get(name, {})
        for rule, limit in rules.items():
            bad = (
                (rule == "pattern" and not re.search(limit, value))
                or (rule == "min_length" and len(value) < limit)
                or (rule == "max_length" and len(value) > limit)
            )
            if bad:
                errors.append(f"path parameter {name}={value!r} violates {rule} {limit!r}")
    return errors


# -- documented schemas (no published model) --------------------------------------------------------

# ARM's asynchronous operations: the body of an Azure-AsyncOperation URL.
# https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations
# https://github.com/Azure/azure-resource-manager-rpc/blob/master/v1.0/async-api-reference.md
OPERATION_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {
            "type": "string",
            "minLength": 1,
        },  # Succeeded | Failed | Canceled, or any other while running
        "startTime": {"type": "string"},
        "endTime": {"type": "string"},
        "percentComplete": {"type": "number", "minimum": 0, "maximum": 100},
        "properties": {"type": "object"},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}

# Azure Monitor custom metrics: POST https://<region>.monitoring.azure.com/<resourceId>/metrics
# https://learn.microsoft.com/azure/azure-monitor/metrics/metrics-store-custom-rest-api (body, timestamp
# window, dimension names/values), https://learn.microsoft.com/azure/azure-monitor/metrics/metrics-custom-overview
# ("Quotas and limits": 10 dimension keys, 256 characters for namespaces, names, keys and values).
_NAME = {"type": "string", "minLength": 1, "maxLength": 256}
CUSTOM_METRIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["time", "data"],
    "additionalProperties": False,
    "properties": {
        "time": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["baseData"],
            "additionalProperties": False,
            "properties": {
                "baseData": {
                    "type": "object",
                    "required": ["metric", "namespace", "series"],
                    "additionalProperties": False,
                    "properties": {
                        "metric": _NAME,
                        "namespace": _NAME,
                        "dimNames": {"type": "array", "maxItems": 10, "uniqueItems": True, "items": _NAME},
                        "series": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["min", "max", "sum", "count"],
                                "additionalProperties": False,
                                "properties": {
                                    "dimValues": {"type": "array", "items": _NAME},
                                    "min": {"type": "number"},
                                    "max": {"type": "number"},
                                    "sum": {"type": "number"},
                                    "count": {"type": "integer", "minimum": 1},
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}
METRIC_PAST, METRIC_FUTURE = timedelta(minutes=20), timedelta(minutes=5)

# Scoring an MLflow model on an Azure ML online endpoint (no-code deployment): "input_data" in
# pandas' split orientation, optional "params"; the answer is a JSON array of predictions.
# https://learn.microsoft.com/azure/machine-learning/how-to-deploy-mlflow-models-online-endpoints
# https://learn.microsoft.com/azure/machine-learning/how-to-deploy-mlflow-models#input-formats
SCORING_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["input_data"],
    "additionalProperties": False,
    "properties": {
        "input_data": {
            "type": "object",
            "required": ["columns", "data"],
            "additionalProperties": False,
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "index": {"type": "array"},
                "data": {"type": "array", "items": {"type": "array"}},
            },
        },
        "params": {"type": "object"},
    },
}
SCORING_RESPONSE_SCHEMA: dict[str, Any] = {"type": "array"}

# Microsoft identity platform, OAuth 2.0 client credentials with a shared secret:
# POST https://<authority>/<tenant>/oauth2/v2.0/token (form-encoded).
# https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
TOKEN_FORM_REQUIRED = ("client_id", "scope", "client_secret", "grant_type")


def schema_errors(schema: dict[str, Any], body: Any, path: str = "$") -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{path}{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    ]


def metric_errors(body: Any, now: datetime | None = None) -> list[str]:
    """A custom metric against the documented schema, plus the rules the page states in prose."""
    errors = schema_errors(CUSTOM_METRIC_SCHEMA, body)
    if errors:
        return errors
    base = body["data"]["baseData"]
    names = base.get("dimNames") or []
    for i, series in enumerate(base["series"]):
        values = series.get("dimValues") or []
        if len(values) != len(names):
            errors.append(
                f"$.data.baseData.series[{i}].dimValues: {len(values)} values for {len(names)} dimNames"
            )
        if series["min"] > series["max"]:
            errors.append(f"$.data.baseData.series[{i}]: min {series['min']} > max {series['max']}")
    try:
        moment = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
    except ValueError:
        return [*errors, f"$.time: {body['time']!r} is not ISO 8601"]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if not now - METRIC_PAST <= moment <= now + METRIC_FUTURE:
        errors.append(f"$.time: {body['time']} is outside the accepted window (20 min past, 5 min future)")
    return errors


def token_form_errors(body: Any) -> list[str]:
    form = {k: v[-1] for k, v in parse_qs(body if isinstance(body, str) else "").items()}
    errors = [f"form field {k} missing" for k in TOKEN_FORM_REQUIRED if not form.get(k)]
    if form.get("grant_type") not in (None, "client_credentials"):
        errors.append(f"grant_type {form['grant_type']!r} is not client_credentials")
    for scope in form.get("scope", "").split():
        if not scope.endswith("/.default"):
            errors.append(f"scope {scope!r}: client credentials take '<resource>/.default' scopes")
    return errors


# -- requests and responses -------------------------------------------------------------------------

_ARM_OPERATION = re.compile(
    r"/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+/"
    r"(?P<kind>mfeOperationsStatus|mfeOperationResults)/[^/]+",
    re.I,
)
_TOKEN = re.compile(r"/[^/]+/oauth2/v2\.0/token")


def _kind(method: str, url: str) -> str:
    parts = urlsplit(url)
    path = parts.path
    if _TOKEN.fullmatch(path):
        return "token"
    if method == "POST" and path.endswith("/metrics"):  # <region>.monitoring.azure.com/<resource id>/metrics
        return "metric"
    if method == "POST" and path.endswith("/score"):
        return "scoring"
    found = _ARM_OPERATION.fullmatch(path)
    if found:
        return "status" if found["kind"].lower() == "mfeoperationsstatus" else "result"
    return "arm"


def _query(url: str, params: dict[str, str] | None) -> dict[str, str]:
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    return {**query, **(params or {})}


def api_version_of(method: str, url: str, params: dict[str, str] | None = None) -> str:
    """The api-version a request (and its response) is validated against: the preview one it sends
    when it is a :data:`PREVIEW_CALLS` call, else :data:`API_VERSION` (so any other preview is an error)."""
    sent = _query(url, params).get("api-version")
    path = urlsplit(url).path
    for version, verb, pattern in PREVIEW_CALLS:
        if sent == version and method.upper() == verb and pattern.fullmatch(path):
            return version
    return API_VERSION


def request_errors(
    method: str,
    url: str,
    body: Any = None,
    params: dict[str, str] | None = None,
    api_version: str = API_VERSION,
) -> list[str]:
    """What is wrong with a request to Azure (ARM, operation polling, scoring, metrics, token)."""
    method, kind = method.upper(), _kind(method.upper(), url)
    if kind == "token":
        return token_form_errors(body)
    if kind == "metric":
        return metric_errors(body)
    if kind == "scoring":
        return schema_errors(SCORING_REQUEST_SCHEMA, body)
    if kind in ("status", "result"):
        errors = [] if method == "GET" else [f"{method} on an operation URL (only GET polls it)"]
        return errors + ([] if body is None else ["an operation poll sends no body"])
    try:
        op, path_params = operation_for(method, urlsplit(url).path, api_version)
    except ModelViolation as err:
        return err.errors
    errors = path_errors(op, path_params)
    sent = _query(url, params).get("api-version")
    if sent != api_version:
        errors.append(f"api-version {sent!r}, the description validated against is {api_version}")
    if op.body is None:
        if body is not None:
            errors.append(f"{op.builder} takes no body")
    elif body is None:
        errors.append(f"{op.builder} needs a {op.body} body")
    else:
        errors += model_errors(op.body, body, request=True, api_version=api_version)
    return errors


def response_errors(
    method: str, url: str, status: int, body: Any, api_version: str = API_VERSION
) -> list[str]:
    """What is wrong with a response (canned or emulated) as the description documents it."""
    method, kind = method.upper(), _kind(method.upper(), url)
    if kind == "token" or kind == "metric":
        return []
    if kind == "scoring":
        return [] if status >= 400 else schema_errors(SCORING_RESPONSE_SCHEMA, body)
    if status >= 400:
        if body is None:
            return [f"HTTP {status} without the ARM error body"]
        return model_errors("ErrorResponse", body, request=False, api_version=api_version)
    if kind == "status":
        return (
            [f"status {status} on an Azure-AsyncOperation URL"]
            if status != 200
            else schema_errors(OPERATION_STATUS_SCHEMA, body)
        )
    if kind == "result":
        return [] if status in (200, 202, 204) else [f"status {status} on a Location (operation result) URL"]
    try:
        op, _ = operation_for(method, urlsplit(url).path, api_version)
    except ModelViolation as err:
        return err.errors
    if status not in op.response:
        return [f"status {status}: {op.builder} accepts {sorted(op.response)}"]
    model = op.response[status]
    if model is None:
        return [] if body in (None, "", {}) else [f"status {status} of {op.builder} has no body"]
    if body is None:
        return [f"status {status} of {op.builder} has a {model} body, got none"]
    return model_errors(model, body, request=False, api_version=api_version)


def check_request(
    method: str,
    url: str,
    body: Any = None,
    params: dict[str, str] | None = None,
    api_version: str = API_VERSION,
) -> None:
    errors = request_errors(method, url, body, params, api_version)
    if errors:
        raise ModelViolation(f"request {method} {urlsplit(url).path}", errors)


def check_response(method: str, url: str, status: int, body: Any, api_version: str = API_VERSION) -> None:
    errors = response_errors(method, url, status, body, api_version)
    if errors:
        raise ModelViolation(f"response {status} to {method} {urlsplit(url).path}", errors)
