"""Google's published API descriptions as a validator of the requests the package sends.

A hand-written expected request and a hand-written canned answer only agree with the reading of
the REST reference their author made: a field name misspelt in both the code and the test passes.
Google publishes every REST API as a *discovery document* (the JSON that generates its client
libraries); google-api-python-client ships them (``googleapiclient/discovery_cache/documents``).
This module holds a request, or an answer, up to that description:

* the method is found from the HTTP method and the URL path, matched against each method's
  ``flatPath`` (``v1/projects/{projectsId}/locations/{locationsId}/endpoints/{endpointsId}:deployModel``);
* the JSON body is checked recursively against the method's ``request`` (or ``response``)
  schema: ``$ref``, the JSON types, ``additionalProperties`` maps, int64 as JSON strings,
  durations, timestamps, enums; a field the schema does not name is an error;
* in requests, fields whose description starts with ``Required.`` must be present and fields
  marked ``Output only.`` must not be sent (the API ignores them: sending one means the code
  expects an effect it does not get). A ``PATCH`` with ``updateMask`` is partial: only the masked
  fields must be present, every mask path must name a field, and a body field outside the mask is
  an error (the API would silently ignore it);
* ``google.protobuf.Any`` values (an operation's ``response`` and ``metadata``) must carry
  ``@type``, and the rest is checked against the message it names;
* query parameters must be the method's own (or the API's standard ones), of their types.

Every problem is one string naming the method, the JSON path and what is wrong, so a failing
test says which field to fix.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

APIS = ("aiplatform.v1", "monitoring.v3", "bigquery.v2")

_REQUIRED = re.compile(r"^(Optional\.\s*)?Required\.")
_OUTPUT_ONLY = re.compile(r"^(Optional\.\s*|Immutable\.\s*)?Output only\.")
_INT = re.compile(r"^-?\d+$")
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_ANY_MARK = "Contains field @type with type URL"
_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
# google.rpc.Code names: the ``status`` of Google's JSON error envelope
RPC_CODES = (
    "OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS "
    "PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED "
    "INTERNAL UNAVAILABLE DATA_LOSS UNAUTHENTICATED"
).split()


class NoSuchMethod(LookupError):
    """No method of the loaded API descriptions answers this HTTP method and path."""


def documents_folder() -> Path:
    """Where google-api-python-client keeps its discovery documents (found without importing it)."""
    found = importlib.util.find_spec("googleapiclient")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("google-api-python-client is not installed: it ships the discovery documents")
    return Path(next(iter(found.submodule_search_locations))) / "discovery_cache" / "documents"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _template_regex(template: str) -> re.Pattern[str]:
    """``v1/{+name}`` or ``v1/projects/{projectsId}:x`` -> a full-match regex with named groups.

    A simple variable stops at ``/`` and at ``:`` (resource ids never hold a colon; custom
    methods such as ``:deployModel`` follow one).
    """
    out, pos = [], 0
    for var in re.finditer(r"\{(\+?)([A-Za-z0-9_.]+)\}", template):
        out.append(re.escape(template[pos : var.start()]))
        group = var.group(2).replace(".", "_")
        out.append(f"(?P<{group}>.+)" if var.group(1) else f"(?P<{group}>[^/:]+)")
        pos = var.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


@dataclass(frozen=True)
class Method:
    """One REST method of a discovery document."""

    api: Api
    id: str
    http_method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def request_schema(self) -> str | None:
        return (self.spec.get("request") or {}).get("$ref")

    @property
    def response_schema(self) -> str | None:
        return (self.spec.get("response") or {}).get("$ref")

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return dict(self.spec.get("parameters") or {})

    def __str__(self) -> str:
        return self.id


@dataclass
class _Mode:
    request: bool  # requests: Required. enforced, Output only. refused
    required: bool = True  # off inside the partial resource of a PATCH with updateMask


class Api:
    """One discovery document: its methods by HTTP method, its schemas, the checks."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.name = f"{doc['name']}.{doc['version']}"
        self.schemas: dict[str, dict[str, Any]] = doc["schemas"]
        self.methods: dict[str, list[Method]] = {}
        self._walk(doc.get("resources") or {})
        self._type_names = {self._type_url_name(name): name for name in self.schemas}

    @classmethod
    def load(cls, name: str) -> Api:
        """``aiplatform.v1``, ``monitoring.v3``...: the document google-api-python-client ships."""
        return _load(name)

    def _walk(self, resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for spec in (resource.get("methods") or {}).values():
                template = spec.get("flatPath") or spec["path"]
                method = Method(
                    self, spec["id"], spec["httpMethod"], template, _template_regex(template), spec
                )
                self.methods.setdefault(method.http_method, []).append(method)
            self._walk(resource.get("resources") or {})

    def find(self, http_method: str, path: str) -> Method | None:
        """The method whose path template matches ``path`` (``v1/...``, no leading slash)."""
        path = path.lstrip("/")
        prefix = str(self.doc.get("servicePath") or "")  # bigquery.v2: "bigquery/v2/", flat paths after it
        if not path.startswith(prefix):
            return None
        path = path[len(prefix) :]
        found = [m for m in self.methods.get(http_method.upper(), []) if m.pattern.fullmatch(path)]
        if not found:
            return None
        # the most specific template: the most literal characters
        return max(found, key=lambda m: len(re.sub(r"\{[^}]*\}", "", m.template)))

    # -- Any

    def _type_url_name(self, schema: str) -> str:
        """``GoogleCloudAiplatformV1Endpoint`` -> ``google.cloud.aiplatform.v1.Endpoint`` (for @type)."""
        words = re.findall(r"V\d+[a-z]*\d*|[A-Z][a-z0-9]*", schema)
        package: list[str] = []
        for i, word in enumerate(words):
            if word.lower() == self.doc["version"] or re.fullmatch(r"V\d+\w*", word):
                package.append(word.lower())
                return ".".join([*package, "".join(words[i + 1 :])])
            package.append(word.lower())
        return schema  # no version in the name (monitoring's schemas): the bare message name

    def schema_for_type_url(self, type_url: str) -> str | None:
        """The schema a ``type.googleapis.com/<full message name>`` names, if the document has it."""
        full = type_url.rsplit("/", 1)[-1]
        if full in self._type_names:
            return self._type_names[full]
        if full.startswith("google.protobuf.") or full.startswith("google.longrunning."):
            candidate = "Google" + "".join(p[:1].upper() + p[1:] for p in full.split(".")[1:])
            if candidate in self.schemas:
                return candidate
        # documents whose schemas carry no package prefix (monitoring.v3: ``TimeSeries``)
        package, _, short = full.rpartition(".")
        own = package == f"google.{self.doc['name']}.{self.doc['version']}"
        return short if own and short in self.schemas else None

    # -- checks

    def check_body(self, schema: str, value: Any, *, request: bool, path: str = "$") -> list[str]:
        """Problems of ``value`` as a ``schema`` message (``request``: a body the client sends)."""
        errors: list[str] = []
        self._check({"$ref": schema}, value, path, _Mode(request=request), errors)
        return errors

    def _check(self, prop: dict[str, Any], value: Any, path: str, mode: _Mode, errors: list[str]) -> None:
        if "$ref" in prop:
            name = prop["$ref"]
            if name not in self.schemas:
                errors.append(f"{path}: the description has no schema {name}")
                return
            self._check_message(name, self.schemas[name], value, path, mode, errors)
            return
        kind = prop.get("type")
        if kind == "any":
            return
        if kind == "object":
            self._check_object(prop, value, path, mode, errors)
        elif kind == "array":
            if not isinstance(value, list):
                errors.append(f"{path}: expected an array, got {_show(value)}")
                return
            for i, item in enumerate(value):
                self._check(prop.get("items") or {}, item, f"{path}[{i}]", mode, errors)
        elif kind == "string":
            self._check_string(prop, value, path, errors)
        elif kind == "integer":
            self._check_integer(prop, value, path, errors)
        elif kind == "number":
            if isinstance(value, bool) or not (
                isinstance(value, int | float) or value in ("NaN", "Infinity", "-Infinity")
            ):
                errors.append(
                    f"{path}: expected a number ({prop.get('format', 'double')}), got {_show(value)}"
                )
        elif kind == "boolean":
            if not isinstance(value, bool):
                errors.append(f"{path}: expected a boolean, got {_show(value)}")
        else:
            errors.append(f"{path}: the description has an unknown type {kind!r}")

    def _check_message(
        self, name: str, schema: dict[str, Any], value: Any, path: str, mode: _Mode, errors: list[str]
    ) -> None:
        if schema.get("type") != "object" or "properties" not in schema:
            if schema.get("type") == "object" and not schema.get("additionalProperties"):
                # an empty message (google.protobuf.Empty and friends): no field at all
                if not isinstance(value, dict):
                    errors.append(f"{path}: expected an object ({name}), got {_show(value)}")
                elif value:
                    errors.append(f"{path}: {name} has no fields, got {sorted(value)}")
                return
            self._check(schema, value, path, mode, errors)
            return
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({name}), got {_show(value)}")
            return
        props: dict[str, dict[str, Any]] = schema["properties"]
        for key, item in value.items():
            if key not in props:
                close = difflib.get_close_matches(_camel(key), list(props), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                errors.append(f"{path}.{key}: unknown field of {name}{hint}")
                continue
            description = props[key].get("description") or ""
            if mode.request and _OUTPUT_ONLY.match(description):
                errors.append(f"{path}.{key}: is output only in {name}; the API ignores it in requests")
                continue
            self._check(props[key], item, f"{path}.{key}", _Mode(mode.request), errors)
        if mode.request and mode.required:
            for key, prop in props.items():
                if key not in value and _REQUIRED.match(prop.get("description") or ""):
                    errors.append(f"{path}.{key}: required field of {name} is missing")

    def _check_object(
        self, prop: dict[str, Any], value: Any, path: str, mode: _Mode, errors: list[str]
    ) -> None:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {_show(value)}")
            return
        extra = prop.get("additionalProperties")
        if prop.get("properties"):  # an inline message
            self._check_message("(inline)", prop, value, path, mode, errors)
            return
        if extra is None:
            if value:
                errors.append(f"{path}: takes no fields, got {sorted(value)}")
            return
        if extra.get("type") == "any" and _ANY_MARK in (extra.get("description") or ""):
            self._check_any(value, path, mode, errors)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(f"{path}: map key {key!r} is not a string")
            self._check(extra, item, f"{path}[{key!r}]", _Mode(mode.request), errors)

    def _check_any(self, value: dict[str, Any], path: str, mode: _Mode, errors: list[str]) -> None:
        """A ``google.protobuf.Any``: ``@type`` names the message, the other fields are that message's."""
        type_url = value.get("@type")
        if not isinstance(type_url, str) or not type_url.startswith("type.googleapis.com/"):
            errors.append(
                f"{path}: a google.protobuf.Any needs '@type': 'type.googleapis.com/<message>', "
                f"got {_show(type_url)}"
            )
            return
        schema = self.schema_for_type_url(type_url)
        if schema is None:
            errors.append(f"{path}.@type: {type_url} names no message of {self.name}")
            return
        rest = {k: v for k, v in value.items() if k != "@type"}
        self._check({"$ref": schema}, rest, path, _Mode(mode.request), errors)

    @staticmethod
    def _check_string(prop: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
        fmt = prop.get("format")
        if not isinstance(value, str):
            if fmt in ("int64", "uint64") and isinstance(value, int) and not isinstance(value, bool):
                errors.append(f"{path}: {fmt} is a JSON string in Google's REST encoding, got number {value}")
            else:
                errors.append(f"{path}: expected a string{f' ({fmt})' if fmt else ''}, got {_show(value)}")
            return
        if fmt in ("int64", "uint64") and not _INT.match(value):
            errors.append(f"{path}: expected a decimal {fmt} string, got {value!r}")
        elif fmt == "google-duration" and not _DURATION.match(value):
            errors.append(f"{path}: expected a duration like '3.5s', got {value!r}")
        elif fmt == "google-datetime" and not _DATETIME.match(value):
            errors.append(
                f"{path}: expected an RFC 3339 timestamp like '2026-01-05T12:00:00Z', got {value!r}"
            )
        elif fmt == "byte":
            try:
                base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                errors.append(f"{path}: expected base64 bytes, got {value[:40]!r}")
        enum = prop.get("enum")
        if enum and value not in enum:
            errors.append(f"{path}: {value!r} is not one of {', '.join(enum)}")

    @staticmethod
    def _check_integer(prop: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
        fmt = prop.get("format", "int32")
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer ({fmt}), got {_show(value)}")
            return
        low, high = _UINT32 if fmt == "uint32" else _INT32
        if not low <= value <= high:
            errors.append(f"{path}: {value} is out of the {fmt} range")

    # -- requests and answers

    def field_mask_errors(self, schema: str, mask: str, where: str) -> tuple[list[str], set[str]]:
        """Problems of a FieldMask over ``schema`` and the top-level fields (camelCase) it names."""
        errors: list[str] = []
        top: set[str] = set()
        for raw in [p.strip() for p in mask.split(",")]:
            if not raw:
                errors.append(f"{where}: empty path in {mask!r}")
                continue
            current: dict[str, Any] | None = self.schemas.get(schema)
            for depth, part in enumerate(raw.split(".")):
                props = (current or {}).get("properties") or {}
                name = _camel(part)
                if name not in props:
                    errors.append(f"{where}: {raw!r} names no field of {schema} ({part!r} is unknown)")
                    break
                if depth == 0:
                    top.add(name)
                ref = props[name].get("$ref")
                current = self.schemas.get(ref) if ref else None
        return errors, top

    def check_request(self, method: Method, body: Any, params: dict[str, Any] | None) -> list[str]:
        """Problems of one request to ``method``: query parameters, then the body."""
        errors = [f"{method} {e}" for e in self._check_params(method, params or {})]
        schema = method.request_schema
        if schema is None:
            if body not in (None, {}):
                errors.append(f"{method} takes no request body, got {_show(body)}")
            return errors
        if body is None:
            return [*errors, f"{method} needs a request body ({schema})"]
        mask = (params or {}).get("updateMask")
        mode = _Mode(request=True)
        if method.http_method == "PATCH" and mask is not None and isinstance(body, dict):
            mask_errors, masked = self.field_mask_errors(schema, str(mask), "?updateMask")
            errors += [f"{method} {e}" for e in mask_errors]
            for key in body:
                if key not in masked and key in (self.schemas[schema].get("properties") or {}):
                    errors.append(
                        f"{method} request body $.{key}: not in updateMask {mask!r}; the API ignores it"
                    )
            # partial resource: only the masked fields are checked for presence
            props = self.schemas[schema].get("properties") or {}
            for key in masked:
                if key not in body and _REQUIRED.match(props[key].get("description") or ""):
                    errors.append(f"{method} request body $.{key}: required and in updateMask, but missing")
            mode = _Mode(request=True, required=False)
        body_errors: list[str] = []
        self._check({"$ref": schema}, body, "$", mode, body_errors)
        return errors + [f"{method} request body {e}" for e in body_errors]

    def _check_params(self, method: Method, params: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        own = method.parameters
        for key, value in params.items():
            spec = own.get(key) or (self.doc.get("parameters") or {}).get(key)
            if spec is None:
                known = sorted(k for k, v in own.items() if v.get("location") == "query")
                errors.append(
                    f"?{key}: unknown query parameter (the method takes {', '.join(known) or 'none'})"
                )
                continue
            if spec.get("location") == "path":
                errors.append(f"?{key}: is a path parameter, not a query parameter")
                continue
            values = value if isinstance(value, list | tuple) else [value]
            if len(values) > 1 and not spec.get("repeated"):
                errors.append(f"?{key}: is not repeated, got {len(values)} values")
            for one in values:
                errors += self._check_param_value(key, spec, one)
        for key, spec in own.items():
            if spec.get("location") == "query" and spec.get("required") and key not in params:
                errors.append(f"?{key}: required query parameter is missing")
        return errors

    @staticmethod
    def _check_param_value(key: str, spec: dict[str, Any], value: Any) -> list[str]:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        kind, fmt = spec.get("type"), spec.get("format")
        if kind == "integer" and not _INT.match(text):
            return [f"?{key}: expected an integer, got {text!r}"]
        if kind == "boolean" and text not in ("true", "false"):
            return [f"?{key}: expected true or false, got {text!r}"]
        if fmt in ("int64", "uint64") and not _INT.match(text):
            return [f"?{key}: expected an {fmt}, got {text!r}"]
        if spec.get("enum") and text not in spec["enum"]:
            return [f"?{key}: {text!r} is not one of {', '.join(spec['enum'])}"]
        return []

    def check_response(self, method: Method, status: int, body: Any) -> list[str]:
        """Problems of an answer: a 2xx against the method's response schema, an error against Google's envelope."""
        if status >= 400:
            return [f"{method} error answer {e}" for e in error_envelope_errors(body)]
        schema = method.response_schema
        if schema is None:
            return [] if body in (None, {}) else [f"{method} answers no body, got {_show(body)}"]
        errors: list[str] = []
        self._check({"$ref": schema}, {} if body is None else body, "$", _Mode(request=False), errors)
        return [f"{method} response {e}" for e in errors]


def error_envelope_errors(body: Any) -> list[str]:
    """Google's JSON error: ``{"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}``."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"$: expected {{'error': {{code, message, status}}}}, got {_show(body)}"]
    error, errors = body["error"], []
    if not isinstance(error.get("code"), int) or isinstance(error.get("code"), bool):
        errors.append(f"$.error.code: expected the HTTP status as an integer, got {_show(error.get('code'))}")
    if not isinstance(error.get("message"), str):
        errors.append(f"$.error.message: expected a string, got {_show(error.get('message'))}")
    if "status" in error and error["status"] not in RPC_CODES:
        errors.append(f"$.error.status: {error['status']!r} is not a google.rpc.Code name")
    for key in set(error) - {"code", "message", "status", "details"}:
        errors.append(f"$.error.{key}: unknown field of the error envelope")
    return errors


@cache
def _load(name: str) -> Api:
    path = documents_folder() / f"{name}.json"
    return Api(json.loads(path.read_text()))


def find_method(http_method: str, url: str, apis: tuple[str, ...] = APIS) -> Method:
    """The method of ``apis`` that ``http_method url`` calls; :class:`NoSuchMethod` if none does."""
    path = urlsplit(url).path
    for name in apis:
        found = Api.load(name).find(http_method, path)
        if found is not None:
            return found
    raise NoSuchMethod(f"no method of {', '.join(apis)} answers {http_method} {path}")


def request_errors(
    http_method: str, url: str, body: Any = None, params: dict[str, Any] | None = None
) -> list[str]:
    """Every problem of a request, as the API description sees it (query in ``url`` counts too)."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    try:
        method = find_method(http_method, url)
    except NoSuchMethod as err:
        return [str(err)]
    return method.api.check_request(method, body, {**query, **(params or {})})


def response_errors(http_method: str, url: str, status: int, body: Any) -> list[str]:
    """Every problem of an answer to ``http_method url`` as the API description sees it."""
    try:
        method = find_method(http_method, url)
    except NoSuchMethod as err:
        return [str(err)]
    return method.api.check_response(method, status, body)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    kind = type(value).__name__
    return f"{kind} {text[:80]}"
