"""The OpenAPI 3.1 document of the bundle, made from the functions' own models.

    document = openapi_document(discover_functions(), version=VERSION)

Every `Endpoint` passed in becomes `/api/<name>`, every method it serves an operation: the
request model becomes the JSON (and multipart) body of a POST or the query parameters of a GET
or DELETE; `response`, `streams`, `errors` and `headers` (see `Endpoint.route`) become its
responses. Every route also answers the errors of its kind, listed below, as the one envelope
`{"error": {"code", "message", "request_id", "details"?}}`, each status with the codes it carries
(`lib.errors.CODES`). So a new function, or a new method on one, is in the document without
touching this file, and a model that changes changes the document (a test compares the committed
`openapi.json` with a fresh one: `python -m lib.cli openapi > openapi.json`).

Models named as "module:Name" are imported here, never by the function on a request.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from lib.errors import CODES
from lib.shapes import Shape

if TYPE_CHECKING:
    from lib.web import Endpoint, _Route

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
UI_STREAM_HEADER = "x-vercel-ai-ui-message-stream"

# Statuses every route of a kind can answer, whatever it does.
ALWAYS = (500, 503)  # a fault of ours; a setting that does not parse, no database
WITH_API_KEY = (401, 403)  # Authorization: Bearer <key> when API_KEYS is set; namespaces per key
WITH_BODY = (400, 413, 415, 422)  # unreadable, too large, wrong content type, bad fields
WITH_QUERY = (400, 422)  # unstorable text, bad parameters

STATUS_TITLES = {
    201: "Created", 400: "Bad request", 401: "Unauthorized", 402: "Budget spent", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Too large", 415: "Unsupported media type",
    422: "Invalid fields", 429: "Rate limited", 500: "Internal error", 502: "Provider failed",
    503: "Unavailable", 504: "Provider timed out",
}


# --- the error envelope ---------------------------------------------------------------------------


class ErrorDetail(Shape):
    """In a 422's `details`: one bad field."""

    field: str = Field(description="dotted path of the field: `messages.0.content`, `top_k`, `body`")
    message: str
    type: str | None = Field(None, description="pydantic's error type, when pydantic found the error")


class ErrorBody(Shape):
    code: str = Field(description="stable and machine-readable")  # documented as ErrorCode, below
    message: str = Field(description="for people: what was wrong and, where it can, what to send instead")
    request_id: str | None = Field(description="also the x-request-id header, and in the server's log line")
    details: Any = Field(None, description="a 422's fields (ErrorDetail[]), a provider failure's "
                         "attempts, a size limit; absent when there is nothing to add")


class ErrorEnvelope(Shape):
    """Every error of every function: this JSON, with the matching HTTP status."""

    error: ErrorBody


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document: this one, as /api/openapi serves it."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any] = Field(default_factory=dict)


# --- the document ---------------------------------------------------------------------------------


def openapi_document(functions: dict[str, Endpoint], *, version: str, title: str = "AI back end") -> dict[str, Any]:
    """The OpenAPI 3.1 document of these functions (`{name: Endpoint}`), as a JSON-ready dict."""
    schemas = _Schemas()
    error_ref = schemas.add(ErrorEnvelope)
    schemas.add(ErrorDetail)
    schemas["ErrorBody"]["properties"]["code"] = {"$ref": REF.format(model="ErrorCode")}
    schemas.put("ErrorCode", {"type": "string", "enum": list(CODES),
                              "description": "Every `error.code` a function sends:\n\n"
                              + "\n".join(f"- `{code}` ({status}): {why}" for code, (status, why) in CODES.items())})
    paths: dict[str, Any] = {}
    tags = []
    for name, endpoint in sorted(functions.items()):
        module = _module_of(endpoint)
        tags.append({"name": name, "description": _clean(module.__doc__ if module else "")})
        paths[f"/api/{name}"] = {
            method.lower(): _operation(name, method, route, endpoint, module, schemas, error_ref)
            for method, route in sorted(endpoint.routes.items(), key=lambda item: _METHOD_ORDER.get(item[0], 9))
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Python functions a Next.js app deploys next to its frontend, at `/api/<name>`. "
                           "Every error is `{\"error\": {\"code\", \"message\", \"request_id\", \"details\"?}}` "
                           "with the matching status; every response carries `x-request-id`.",
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "headers": {
                "RequestId": {"description": "the request's id: the x-request-id the caller sent (8-128 of "
                                             "[A-Za-z0-9._:-]) or a new one; also in the error body and the log",
                              "schema": {"type": "string"}},
                "UIMessageStream": {"description": "marks the AI SDK UI message stream (useChat's "
                                                   "DefaultChatTransport reads it)",
                                    "schema": {"type": "string", "const": "v1"}},
            },
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "A key from API_KEYS. Required whenever API_KEYS is set, and "
                                          "production refuses to serve without it; locally, with no "
                                          "API_KEYS, the functions are open."},
            },
        },
    }


def document_json(document: dict[str, Any]) -> str:
    """The document as committed: stable key order, two-space indent, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


_METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}


def _operation(name: str, method: str, route: _Route, endpoint: Endpoint, module: Any,
               schemas: _Schemas, error_ref: dict[str, str]) -> dict[str, Any]:
    summary, description = _summary(route.handler.__doc__)
    operation: dict[str, Any] = {
        "tags": [name],
        "operationId": f"{method.lower()}_{name}",
        "summary": summary or f"{method} /api/{name}",
    }
    if description:
        operation["description"] = description
    operation["security"] = [{"apiKey": []}] if endpoint.auth else []
    statuses = set(ALWAYS) | set(route.errors) | (set(WITH_API_KEY) if endpoint.auth else set())
    if method in ("POST", "PUT", "PATCH"):
        statuses |= set(WITH_BODY)
        if route.model is not None:
            operation["requestBody"] = _request_body(route, module, schemas)
    elif route.model is not None:
        statuses |= set(WITH_QUERY)
        operation["parameters"] = _query_parameters(route.model, module, schemas)
    if method == "DELETE":
        statuses |= set(WITH_BODY)
    responses: dict[str, Any] = {}
    for status, model in sorted(route.responses.items()):
        responses[str(status)] = _success(status, model, route if status == 200 else None, module, schemas)
    if "200" not in responses:
        responses["200"] = _success(200, None, route, module, schemas)
    for status in sorted(statuses - set(route.responses)):
        responses[str(status)] = _error_response(status, error_ref)
    operation["responses"] = responses
    return operation


def _request_body(route: _Route, module: Any, schemas: _Schemas) -> dict[str, Any]:
    body = schemas.ref_for(route.model, module)
    content: dict[str, Any] = {"application/json": {"schema": body}}
    if route.multipart:
        content["multipart/form-data"] = {"schema": {
            "type": "object",
            "description": "The JSON body's fields as form fields (JSON objects such as `metadata` as JSON "
                           "text), and the document as the `file` part.",
            "properties": {"file": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}},
            "additionalProperties": {"type": "string"},
        }}
    return {"required": True, "content": content}


def _query_parameters(model: Any, module: Any, schemas: _Schemas) -> list[dict[str, Any]]:
    schema = schemas.inline(model)
    required = set(schema.get("required", []))
    parameters = []
    for field, prop in schema.get("properties", {}).items():
        parameter = {"name": field, "in": "query", "required": field in required, "schema": prop}
        if prop.get("description"):
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _success(status: int, model: Any, route: _Route | None, module: Any, schemas: _Schemas) -> dict[str, Any]:
    headers: dict[str, Any] = {"x-request-id": {"$ref": "#/components/headers/RequestId"}}
    content: dict[str, Any] = {}
    descriptions = []
    media_types: list[str] = []
    if isinstance(model, str):  # "module:Name | module:Other", "text/html | text/css", or both
        parts = [part.strip() for part in model.split("|")]
        media_types = [part for part in parts if "/" in part and ":" not in part]
        model = " | ".join(part for part in parts if part not in media_types) or None
    if model is not None:
        content["application/json"] = {"schema": schemas.ref_for(model, module)}
        descriptions.append("JSON")
    for media_type in media_types:  # not JSON by nature: a page, a script, Prometheus text
        content[media_type] = {"schema": {"type": "string"}}
        descriptions.append(media_type)
    for kind, data_model in (route.streams if route else {}).items():
        if kind == "ui":
            headers[UI_STREAM_HEADER] = {"$ref": "#/components/headers/UIMessageStream"}
            media = {"schema": {"type": "string", "description": (
                "The AI SDK UI message stream (v5), as useChat reads it: server-sent events `data: <chunk JSON>`"
                " (start, start-step, text-start, text-delta, text-end, tool-input-start, tool-input-available, "
                "source-url, source-document, finish-step, finish, error) ending with `data: [DONE]`. "
                + (f"`finish.messageMetadata` is {_name_of(data_model)}." if data_model else ""))}}
            if data_model is not None:
                media["x-message-metadata"] = schemas.ref_for(data_model, module)
            content["text/event-stream"] = media
            descriptions.append(f"the AI SDK UI message stream ({UI_STREAM_HEADER}: v1)")
        elif kind == "text":
            content["text/plain; charset=utf-8"] = {"schema": {
                "type": "string", "description": "The answer's text as it is written (protocol: text, "
                                                 "for the AI SDK's TextStreamChatTransport)."}}
            descriptions.append("plain text")
        elif kind == "events":
            media = {"schema": {"type": "string", "description": (
                f"Server-sent events `data: <{_name_of(data_model) if data_model else 'event'} JSON>`, one per "
                "stage, the last a result "
                "or an error.")}}
            if data_model is not None:
                media["x-event"] = schemas.ref_for(data_model, module)
            content["text/event-stream"] = media
            descriptions.append("server-sent progress events")
        else:
            raise ValueError(f"unknown stream kind {kind!r}: ui, text or events")
    if route is not None:
        headers.update({name: {"description": text, "schema": {"type": "string"}}
                        for name, text in route.headers.items()})
    title = STATUS_TITLES.get(status, "OK")
    response: dict[str, Any] = {"description": f"{title}: {', or '.join(descriptions)}" if descriptions else title,
                                "headers": headers}
    if content:
        response["content"] = content
    return response


def _error_response(status: int, error_ref: dict[str, str]) -> dict[str, Any]:
    codes = [f"- `{code}`: {why}" for code, (code_status, why) in CODES.items() if code_status == status]
    description = STATUS_TITLES.get(status, "Error") + ("\n\n" + "\n".join(codes) if codes else "")
    return {"description": description,
            "headers": {"x-request-id": {"$ref": "#/components/headers/RequestId"}},
            "content": {"application/json": {"schema": error_ref}}}


# --- models -> JSON Schema ------------------------------------------------------------------------


class _Schemas(dict):
    """components.schemas, filled as models are met; one name, one schema."""

    def put(self, name: str, schema: dict[str, Any]) -> None:
        schema = tidy(schema)
        if name in self and self[name] != schema:
            raise ValueError(f"two different schemas are both named {name!r}: rename one of the models")
        self[name] = schema

    def add(self, model: Any, name: str | None = None) -> dict[str, str]:
        """Put `model` (and every model it uses) in the components; a $ref to it."""
        from pydantic import TypeAdapter

        name = name or model.__name__
        schema = TypeAdapter(model).json_schema(ref_template=REF)
        for sub_name, sub_schema in schema.pop("$defs", {}).items():
            self.put(sub_name, sub_schema)
        if schema.get("$ref") == REF.format(model=name):
            return {"$ref": schema["$ref"]}
        self.put(name, schema)
        return {"$ref": REF.format(model=name)}

    def inline(self, model: Any) -> dict[str, Any]:
        """`model`'s own schema, with the models it uses in the components."""
        from pydantic import TypeAdapter

        schema = TypeAdapter(_resolve(model)).json_schema(ref_template=REF)
        for sub_name, sub_schema in schema.pop("$defs", {}).items():
            self.put(sub_name, sub_schema)
        return tidy(schema)

    def ref_for(self, model: Any, module: Any) -> dict[str, Any]:
        """A $ref (or an anyOf of them) for a model, a union, or "module:Name | module:Other"."""
        if isinstance(model, str) and "|" in model:
            return {"anyOf": [self.ref_for(part.strip(), module) for part in model.split("|")]}
        resolved = _resolve(model)
        return self.add(resolved, _name_of(model, module))


_SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SUBSCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")


def tidy(schema: Any) -> Any:
    """pydantic's JSON Schema, as a reader (and openapi-typescript) wants it: no generated titles
    (the names say it), and an optional value as `type: [T, "null"]` rather than an anyOf."""
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if key != "title"}
    for key in _SUBSCHEMA:
        if isinstance(out.get(key), dict):
            out[key] = tidy(out[key])
    for key in _SUBSCHEMAS:
        if isinstance(out.get(key), list):
            out[key] = [tidy(item) for item in out[key]]
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: tidy(value) for name, value in out[key].items()}
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        if isinstance(other.get("type"), str) and not set(other) & {*out, "const", "enum"}:
            del out["anyOf"]
            out = {**other, "type": [other["type"], "null"], **out}
    return out


def _resolve(model: Any) -> Any:
    if isinstance(model, str):
        module_name, _, attribute = model.partition(":")
        return getattr(importlib.import_module(module_name), attribute)
    return model


def _name_of(model: Any, module: Any = None) -> str:
    """The schema's name: a class's own, "module:Name"'s Name, or the name a module gives a union."""
    if isinstance(model, str):
        return model.partition(":")[2]
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.__name__
    for where in (module, *(m for m in list(sys.modules.values()) if m and m.__name__.startswith("lib."))):
        for attribute, value in vars(where or object).items():
            if value is model and not attribute.startswith("_"):
                return attribute
    raise ValueError(f"cannot name {model!r}: give it a module-level name, or pass it as 'module:Name'")


def _module_of(endpoint: Endpoint) -> Any:
    handler = next(iter(endpoint.routes.values())).handler if endpoint.routes else None
    return sys.modules.get(handler.__module__) if handler else None


def _summary(doc: str | None) -> tuple[str, str]:
    text = _clean(doc or "")
    first, _, rest = text.partition("\n")
    return first.strip(), rest.strip()


def _clean(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc or "")
