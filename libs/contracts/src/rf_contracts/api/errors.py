"""The error answer of every service, and the registry of its machine-readable codes (`ErrorCode`).

Every 4xx/5xx answer is `{"detail": "a readable sentence", "code": "snake_case"}`. A 422 about the request's
shape adds `errors`: one entry per problem, located (`loc`: "body", "query", "path", "header", then the field).
Some answers add context of their own beside them (a 409 on a claimed handoff names `claimed_by`).

A code, once published, keeps its meaning. A new one is added here before it is raised anywhere: the test suite
fails on any answer whose code is not listed (tests/e2e, and the OpenAPI document's enum).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from rf_contracts.api import examples as ex
from rf_contracts.api.examples import example


class ErrorCode(StrEnum):
    """The stable, machine-readable name of each error case (`code` of every error answer)."""

    # --- generic, one per kind of answer (the kit's default when a raise site names no specific code)
    BAD_REQUEST = "bad_request"
    VALIDATION_FAILED = "validation_failed"
    INVALID_INPUT = "invalid_input"
    NOT_AUTHENTICATED = "not_authenticated"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    CONFLICT = "conflict"
    PRECONDITION_FAILED = "precondition_failed"
    REQUEST_TOO_LARGE = "request_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    # --- the gateway in front of the services
    UPSTREAM_FAILED = "upstream_failed"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    # --- Idempotency-Key (every POST)
    IDEMPOTENCY_KEY_INVALID = "idempotency_key_invalid"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    # --- identity (gateway)
    AUTHENTICATION_FAILED = "authentication_failed"
    BAD_CREDENTIALS = "bad_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    TOO_MANY_LOGIN_ATTEMPTS = "too_many_login_attempts"
    TOO_MANY_REGISTRATIONS = "too_many_registrations"
    TOO_MANY_WRONG_PASSWORDS = "too_many_wrong_passwords"
    REGISTRATION_CLOSED = "registration_closed"
    WRONG_PASSWORD = "wrong_password"
    EMAIL_TAKEN = "email_taken"
    LAST_ACTIVE_ADMIN = "last_active_admin"
    USER_NOT_FOUND = "user_not_found"
    # --- API keys (gateway)
    INVALID_API_KEY = "invalid_api_key"
    API_KEY_NOT_FOUND = "api_key_not_found"
    API_KEY_EXPIRY_IN_PAST = "api_key_expiry_in_past"
    API_KEY_NOT_ALLOWED = "api_key_not_allowed"
    IDENTITY_STORE_UNAVAILABLE = "identity_store_unavailable"
    # --- trees and sessions (sessions)
    TREE_NOT_FOUND = "tree_not_found"
    TREE_VERSION_NOT_FOUND = "tree_version_not_found"
    INVALID_TREE = "invalid_tree"
    SESSION_NOT_FOUND = "session_not_found"
    SESSION_COMPLETED = "session_completed"
    ANSWER_NOT_AT_CURRENT_NODE = "answer_not_at_current_node"
    UNKNOWN_OPTION = "unknown_option"
    NODE_NOT_IN_TREE = "node_not_in_tree"
    ACCOUNT_SCOPE_FORBIDDEN = "account_scope_forbidden"
    # --- handoffs
    HANDOFF_NOT_FOUND = "handoff_not_found"
    SESSION_ALREADY_ESCALATED = "session_already_escalated"
    HANDOFF_ALREADY_CLAIMED = "handoff_already_claimed"
    HANDOFF_RESOLVED = "handoff_resolved"
    HANDOFF_CHANGED = "handoff_changed"
    HANDOFF_NOT_CLAIMED = "handoff_not_claimed"
    HANDOFF_OPEN = "handoff_open"
    NOT_CLAIM_HOLDER = "not_claim_holder"
    SESSIONS_UNAVAILABLE = "sessions_unavailable"
    # --- analytics and live streams
    UNKNOWN_TIME_ZONE = "unknown_time_zone"
    INVALID_BUSINESS_HOURS = "invalid_business_hours"
    BUSINESS_HOURS_NOT_SET = "business_hours_not_set"
    INVALID_LAST_EVENT_ID = "invalid_last_event_id"


class ErrorResponse(BaseModel):
    """Every error answer: a readable `detail`, a stable `code`, and for a 422 of the request's shape `errors`."""

    # Context a case adds beside detail and code (e.g. `claimed_by` on handoff_already_claimed) is allowed.
    model_config = example(
        {"detail": "handoff is already claimed", "code": "handoff_already_claimed", "claimed_by": ex.OTHER_USER_ID},
        {
            "detail": "body.priority: Input should be 'low', 'normal', 'high' or 'urgent'",
            "code": "validation_failed",
            "errors": [{"loc": ["body", "priority"], "msg": "Input should be 'low', 'normal', 'high' or 'urgent'",
                        "type": "literal_error"}],
        },
        extra="allow",
    )

    detail: str = Field(description="what went wrong, as a sentence for people")
    code: ErrorCode = Field(description="what went wrong, as a stable name for programs")
    errors: list[dict[str, Any]] | None = Field(
        default=None,
        description="each problem with the request: `loc` (where), `msg` (what), `type` (its kind), or for an "
        "invalid tree each violated rule with its node",
    )
