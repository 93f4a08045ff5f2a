"""The OpenAPI document states the error answer once: every 4xx/5xx is an `ErrorResponse`, its code an enum.

FastAPI documents an error only where a route names a model for it, and its default 422 is a bare list that no
service answers. This completes the generated document: each error answer without a schema (or with FastAPI's
HTTPValidationError, or any other that carries no `code`) gets rf_contracts' ErrorResponse, whose `code` lists
every ErrorCode; and each POST that honours Idempotency-Key (rfkit.idempotency) documents that header.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from rf_contracts.api.errors import ErrorResponse

_REF = "#/components/schemas/ErrorResponse"
_FASTAPI_422 = {"#/components/schemas/HTTPValidationError"}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "makes a retry safe: the same key from the same user within 24 h answers with the first "
    "answer (status and body) without doing the work again; with another body it is 422 "
    "idempotency_key_reused; while the first is still running a repeat waits for it, up to 10 s, then 409 "
    "idempotency_in_progress. 1-255 characters of letters, digits and . _ ~ : + / = -",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[A-Za-z0-9._~:+/=-]{1,255}$"},
}


# The answers the Idempotency-Key itself can cause, by status.
_KEY_CODES = {"422": ("idempotency_key_invalid", "idempotency_key_reused"), "409": ("idempotency_in_progress",)}


def _carries_code(schema: dict[str, Any]) -> bool:
    return schema.get("$ref") == _REF or "code" in (schema.get("properties") or {})


def _complete(document: dict[str, Any], keyed: Sequence[str]) -> None:
    keyed_paths = {re.sub(r"{(\w+):\w+}", r"{\1}", path) for path in keyed}  # as OpenAPI writes them
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    generated = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(generated.pop("$defs", {}))
    schemas["ErrorResponse"] = generated
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for status, answer in operation.get("responses", {}).items():
                if not (str(status).isdigit() and int(status) >= 400):
                    continue
                content = answer.setdefault("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if schema.get("$ref") in _FASTAPI_422 or not _carries_code(schema):
                    content["application/json"] = {"schema": {"$ref": _REF}}
            if method == "post" and path in keyed_paths:
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(dict(_IDEMPOTENCY_KEY))
                answers = operation.setdefault("responses", {})
                # A route that documents its own codes for these statuses can also answer the key's.
                for status, codes in _KEY_CODES.items():
                    own = answers.get(status, {}).get("content", {}).get("application/json", {}).get("schema", {})
                    enum = (own.get("properties") or {}).get("code", {}).get("enum")
                    if enum is not None:
                        enum.extend(code for code in codes if code not in enum)
                answers.setdefault("409", {"description": "a request with this Idempotency-Key is still running "
                                                         "(code idempotency_in_progress); see Retry-After",
                                           "content": {"application/json": {"schema": {"$ref": _REF}}}})
    text = repr(document.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}'" not in text:
            schemas.pop(name, None)


def document_errors(app: FastAPI, keyed_paths: Sequence[str]) -> None:
    """Make `app.openapi()` return the completed document (built once, as FastAPI does)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _complete(document, keyed_paths)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
