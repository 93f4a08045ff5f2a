"""Error answers as every service and the gateway write them: `{"detail": sentence, "code": snake_case}`.

The codes are those of rf_contracts.api.errors.ErrorCode; an answer written here with another code would fail
the tests that check every error answer against that registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse

# The code of an answer that no raise site named more precisely, by HTTP status.
STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_failed",
    503: "service_unavailable",
    504: "upstream_timeout",
}


def status_code_name(status: int) -> str:
    """The generic code of an HTTP error status."""
    return STATUS_CODES.get(status) or ("internal_error" if status >= 500 else "bad_request")


def problem(
    status: int, detail: str, code: str | None = None, *, headers: Mapping[str, str] | None = None,
    **context: Any,
) -> JSONResponse:
    """An error answer; `context`: members beside detail and code (e.g. `errors`, `claimed_by`)."""
    body = {"detail": detail, "code": code or status_code_name(status), **context}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def invalid_request(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """A 422 about the request's shape: one sentence naming the first problem, and every problem under `errors`."""
    if errors:
        first = errors[0]
        detail = f"invalid request: {_where(first.get('loc', ()))}: {first.get('msg', 'invalid')}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    else:
        detail = "invalid request"
    return problem(422, detail, "validation_failed", errors=list(errors))
