"""A cap on request bodies: the gateway reads bodies into memory, so their size must be bounded before that."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rfkit.asgi import HttpMiddleware
from rfkit.problems import problem

TOO_LARGE = "request body too large"


class BodyLimit(HttpMiddleware):
    """413 for a body over `max_bytes`: at once when Content-Length says so, else as soon as it is exceeded."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # uvicorn refuses a malformed length before we get here
                if declared > self.max_bytes:
                    await problem(413, TOO_LARGE, "request_too_large")(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised while the body is read: FastAPI lets an HTTPException through as the answer.
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited, send)
