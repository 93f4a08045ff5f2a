"""Server-Sent Events as the live queue speaks them: its documentation and parameters, declared once for the
handoffs service that streams and the gateway that relays (both OpenAPI documents say the same)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Header, Query

from rfkit.errors import Invalid, Unauthenticated

MEDIA_TYPE = "text/event-stream"
# No cache may keep it; proxies that buffer answers (nginx) are asked not to.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

DESCRIPTION = (
    "Server-Sent Events of the caller's account. Every change of a handoff (requested, claimed, released, "
    "resolved, stale) is one `event: handoff` whose `data` is the handoff as `GET /handoffs/{id}` shows it and "
    "whose `id` grows by one per change of the account. Reconnect with `Last-Event-ID` (or `?last_event_id=`) to "
    "receive every change after that id (kept for at least an hour); without it the stream starts with the next "
    "change, so open the stream first and read the queue after. `event: reset` means changes after the given id "
    "can no longer be replayed: reload the queue. A comment line (`: keep-alive`) comes after 15 s of silence. "
    "The stream ends when the access token expires or is revoked: refresh it and reconnect with the last id."
)

EXAMPLE = (
    "retry: 2000\n\n"
    "id: 42\nevent: handoff\ndata: {\"id\": \"...\", \"status\": \"claimed\", \"version\": 2, \"history\": [...]}\n\n"
    ": keep-alive\n\n"
)

OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the stream (text/event-stream), open until the token expires",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}, "example": EXAMPLE}},
    }
}

# The largest id a client can send back: PostgreSQL's bigint.
MAX_EVENT_ID = 2**63 - 1

LastEventIdQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_EVENT_ID, description="resume after this event id (for clients that cannot set headers)"),
]
LastEventIdHeader = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="resume after this event id (sent by EventSource when it reconnects)"),
]


def check_unexpired(expires_at: float) -> None:
    """Refuse a token past its expiry, without the verifier's clock leeway: a stream opened with it would end at
    once, and a client reconnecting in a loop is better told to refresh its token."""
    if time.time() >= expires_at:
        raise Unauthenticated("invalid token: expired, refresh it", code="token_expired")


def resume_after(header: str | None, query: int | None) -> int | None:
    """The id to resume after: the header (what EventSource sends on reconnecting) before the query parameter."""
    if header is None or not header.strip():
        return query
    text = header.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_EVENT_ID:
        raise Invalid(
            "Last-Event-ID must be an event id this stream sent (a whole number)", code="invalid_last_event_id"
        )
    return int(text)
