"""Idempotency-Key on POST: the first answer to a caller's keyed request is kept 24 h in the service's database.

A client that retries a POST (after a timeout, a dropped connection) sends the same `Idempotency-Key` header; the
service answers the retry with the status, body and headers (Content-Type, Location, ETag) of the first attempt
instead of doing the work again. The rules, in the order they apply:

- The key is 1 to 255 characters of `A-Z a-z 0-9 . _ ~ : + / = -` (a UUID fits); anything else is 422
  `idempotency_key_invalid`. No key: the request is served as if this module did not exist.
- A key belongs to a caller and a request line: (account, user, `POST /api/v1/...` with its ids). The caller is
  the user of the bearer token the service verifies anyway; a POST without a valid token (register, login,
  refresh) belongs to the client's address (behind RF_TRUSTED_PROXIES, the address the proxy forwarded for).
  The same key on another path, or from another user, is another key.
- The same key with another body (or query string, or content type) is 422 `idempotency_key_reused`.
- While the first request runs, a repeat waits for its answer (polling the database), up to `wait_s`
  (10 s by default); then it is 409 `idempotency_in_progress` with Retry-After, and the client retries later.
- 5xx answers are not kept (the key can be retried), nor are 401, 403, 408 and 429 (they depend on the
  credentials or the moment, not on the request), nor bodies larger than `max_stored_bytes`.
- Rows are kept 24 h: an older one is ignored (the key starts afresh) and purged, at most once a minute per
  process, by the process that writes a key.
- The database is the truth, so replicas agree: a repeat reaching another replica waits for or replays the
  first one's answer. An attempt whose process died is taken over after `lease_s` (60 s).

The work itself commits in its own transaction: if a process dies between committing the work and recording its
answer, a retry after the lease does the work again (the one window where a key does not prevent it).

With a `secret` (the gateway's, whose bodies hold passwords and whose answers hold tokens), the stored
fingerprint is a keyed hash and the stored body is encrypted under a key derived from the secret and the request
itself: the table alone reveals neither passwords nor tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter
from fastapi.routing import APIRoute
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rfkit.auth import InvalidToken, Principal
from rfkit.problems import problem
from rfkit.tables import idempotency_keys as keys

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
KEY_PATTERN = re.compile(r"[A-Za-z0-9._~:+/=-]{1,255}")
TTL_S = 24 * 3600
# Headers of the first answer that a replay carries too; the rest (dates, request ids) belong to each answer.
KEPT_HEADERS = frozenset({b"content-type", b"location", b"etag"})
# Answers that say something about the credentials or the moment rather than the request: a retry may differ.
NOT_KEPT = frozenset({401, 403, 408, 429})
REPLAYED = (b"idempotent-replayed", b"true")
_NOBODY = uuid.UUID(int=0)
_MAX_REQUEST_LINE = 1024


@dataclass(frozen=True)
class _Stored:
    status: int
    headers: list[list[str]]
    body: bytes


@dataclass(eq=False, repr=False)
class Idempotency:
    """Pure ASGI middleware giving every POST route that `owns(route)` accepts an Idempotency-Key (module doc).

    `owner`: the FastAPI app (state.runtime.db, state.verifier); `paths`: the route paths (`/api/v1/x/{id}`) of the
    POSTs answered here (not the gateway's forwarded ones: the owning service keeps their keys).
    """

    app: ASGIApp
    _: KW_ONLY
    owner: Any
    paths: Sequence[str]
    secret: bytes | None = None
    wait_s: float = 10.0
    poll_s: float = 0.05
    lease_s: float = 60.0
    purge_every_s: float = 60.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_stored_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        self._patterns = [compile_path(path)[0] for path in self.paths]
        self._purged_at = 0.0

    def _keyed(self, scope: Scope) -> bool:
        return any(pattern.match(scope["path"]) for pattern in self._patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw = next((value for name, value in scope["headers"] if name == HEADER), None)
        if raw is None or not self._keyed(scope):
            await self.app(scope, receive, send)
            return
        key = raw.decode("latin-1")
        if not KEY_PATTERN.fullmatch(key):
            await _problem(422, "the Idempotency-Key header must be 1 to 255 characters of letters, digits and "
                                ". _ ~ : + / = -", "idempotency_key_invalid")(scope, receive, send)
            return
        request_line = f"POST {scope['path']}"
        if len(request_line) > _MAX_REQUEST_LINE:  # no route has such ids: it answers 404/422 by itself
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await _problem(413, "request body too large", "request_too_large")(scope, receive, send)
            return
        digest = _digest(scope, body)
        account_id, caller = await self._caller(scope)
        slot = _Slot(self, account_id=account_id, caller=caller, request=request_line, key=key,
                     fingerprint=self._fingerprint(digest), body_key=self._body_key(digest))
        try:
            outcome = await slot.begin()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError) as exc:
            log.warning("idempotency keys unavailable: %r", exc)
            await _problem(503, "the service's database is unavailable; try again shortly", "service_unavailable",
                           retry_after=1)(scope, receive, send)
            return
        if outcome == "reused":
            await _problem(422, "this Idempotency-Key was already used with a different request body; use a new "
                                "key for a new request", "idempotency_key_reused")(scope, receive, send)
            return
        if outcome == "busy":
            await _problem(409, f"a request with this Idempotency-Key is still being processed after "
                                f"{self.wait_s:g}s; retry later", "idempotency_in_progress",
                           retry_after=1)(scope, receive, send)
            return
        if isinstance(outcome, _Stored):
            await _replay(outcome)(scope, receive, send)
            return
        await self._run(slot, scope, body, send)

    async def _run(self, slot: _Slot, scope: Scope, body: bytes, send: Send) -> None:
        sent = False

        async def receive_body() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status = 0
        headers: list[list[str]] = []
        chunks: list[bytes] = []
        size = 0

        async def capture(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend([name.decode("latin-1"), value.decode("latin-1")]
                               for name, value in message.get("headers") or () if name.lower() in KEPT_HEADERS)
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size <= self.max_stored_bytes:
                    chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_body, capture)
        except BaseException:
            await asyncio.shield(slot.release())
            raise
        if status < 500 and status not in NOT_KEPT and size <= self.max_stored_bytes:
            await slot.finish(_Stored(status, headers, b"".join(chunks)))
        else:
            await slot.release()

    async def _caller(self, scope: Scope) -> tuple[uuid.UUID, str]:
        principal = await self._principal(scope)
        if principal is not None:
            return principal.account_id, f"user:{principal.user_id}"
        client = scope.get("client")
        return _NOBODY, f"address:{client[0] if client else 'unknown'}"

    async def _principal(self, scope: Scope) -> Principal | None:
        """The caller as rfkit.auth would accept it (signature, denial feed, the gateway's own check), or None."""
        auth = next((value for name, value in scope["headers"] if name == b"authorization"), b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        state = self.owner.state
        verifier = getattr(state, "verifier", None)
        if scheme.lower() != "bearer" or not token or verifier is None:
            return None
        try:
            principal: Principal = verifier.verify(token.strip())
        except InvalidToken:
            return None
        denials = getattr(state, "denials", None)
        if denials is not None and denials.reason(principal.token_id) is not None:
            return None
        check = getattr(state, "principal_check", None)
        if check is not None:
            try:
                await check(Request(scope), principal)
            except Exception:  # refused: the route answers 401 itself, and that answer is not kept
                return None
        return principal

    def _fingerprint(self, digest: bytes) -> bytes:
        if self.secret is None:
            return digest
        return hmac.new(self.secret, b"fingerprint" + digest, hashlib.sha256).digest()

    def _body_key(self, digest: bytes) -> bytes | None:
        if self.secret is None:
            return None
        return hmac.new(self.secret, b"body" + digest, hashlib.sha256).digest()

    async def purge(self, conn: AsyncConnection) -> None:
        """Delete expired keys of every account (system-wide), a bounded batch at most once per interval."""
        now = time.monotonic()
        if now - self._purged_at < self.purge_every_s:
            return
        self._purged_at = now
        expired: sa.Select[Any] = sa.select(sa.literal_column("ctid")).select_from(keys).where(_expired()).limit(1000)
        await conn.execute(sa.delete(keys).where(sa.literal_column("ctid").in_(expired.scalar_subquery())))


def _expired() -> sa.ColumnElement[bool]:
    return keys.c.created_at < sa.func.now() - sa.text(f"interval '{TTL_S} seconds'")


class _Slot:
    """One (account, caller, request line, key) row and this attempt's claim on it."""

    def __init__(self, mw: Idempotency, *, account_id: uuid.UUID, caller: str, request: str, key: str,
                 fingerprint: bytes, body_key: bytes | None) -> None:
        self.mw = mw
        self.db = mw.owner.state.runtime.db
        self.pk = (keys.c.account_id == account_id) & (keys.c.caller == caller) & (keys.c.request == request) & (
            keys.c.key == key)
        self.values = {"account_id": account_id, "caller": caller, "request": request, "key": key}
        self.fingerprint = fingerprint
        self.body_key = body_key
        self.attempt = uuid.uuid4()

    async def begin(self) -> str | _Stored:
        """"owned" (this attempt does the work), a stored answer, "reused" or "busy" (waited `wait_s` in vain)."""
        deadline = time.monotonic() + self.mw.wait_s
        fresh = {"fingerprint": self.fingerprint, "owner": self.attempt, "status_code": None, "headers": None,
                 "body": None, "created_at": sa.func.now(), "started_at": sa.func.now()}
        while True:
            async with self.db.engine.begin() as conn:
                await self.mw.purge(conn)
                inserted = await conn.execute(
                    pg_insert(keys).values(**self.values, fingerprint=self.fingerprint, owner=self.attempt)
                    .on_conflict_do_nothing().returning(keys.c.owner)
                )
                if inserted.first() is not None:
                    return "owned"
                row = (await conn.execute(
                    sa.select(keys.c.fingerprint, keys.c.status_code, keys.c.headers, keys.c.body, keys.c.owner,
                              _expired().label("expired"),
                              (keys.c.started_at < sa.func.now() - sa.text(f"interval '{self.mw.lease_s} seconds'"))
                              .label("stale"))
                    .where(self.pk)
                )).first()
                if row is None:
                    continue  # the first attempt gave the key up (a 5xx) just now: try again to take it
                if row.expired:
                    # Older than 24 h: as if it did not exist.
                    taken = await conn.execute(sa.update(keys).where(self.pk, _expired()).values(**fresh)
                                               .returning(keys.c.owner))
                    if taken.first() is not None:
                        return "owned"
                    continue
                if row.fingerprint != self.fingerprint:
                    return "reused"
                if row.status_code is not None:
                    return _Stored(row.status_code, row.headers or [], self._open(row.body or b""))
                if row.stale:
                    # The attempt holding it stopped answering (its process died): this one takes over.
                    taken = await conn.execute(
                        sa.update(keys).where(self.pk, keys.c.owner == row.owner, keys.c.status_code.is_(None))
                        .values(owner=self.attempt, started_at=sa.func.now()).returning(keys.c.owner)
                    )
                    if taken.first() is not None:
                        return "owned"
                    continue
            if time.monotonic() >= deadline:
                return "busy"
            await asyncio.sleep(self.mw.poll_s)

    async def finish(self, answer: _Stored) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(
                sa.update(keys).where(self.pk, keys.c.owner == self.attempt, keys.c.status_code.is_(None))
                .values(status_code=answer.status, headers=answer.headers, body=self._seal(answer.body))
            )

    async def release(self) -> None:
        """Give the key up (no answer worth keeping): the next attempt with it does the work."""
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(sa.delete(keys).where(self.pk, keys.c.owner == self.attempt,
                                                         keys.c.status_code.is_(None)))
        except Exception:  # the lease frees it later
            log.warning("could not release an idempotency key", exc_info=True)

    def _seal(self, body: bytes) -> bytes:
        if self.body_key is None:
            return body
        nonce = os.urandom(12)
        return nonce + AESGCM(self.body_key).encrypt(nonce, body, None)

    def _open(self, stored: bytes) -> bytes:
        if self.body_key is None:
            return stored
        return AESGCM(self.body_key).decrypt(stored[:12], stored[12:], None)


def _digest(scope: Scope, body: bytes) -> bytes:
    """What makes two requests with one key "the same": path, query string, content type and body."""
    h = hashlib.sha256()
    content_type = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
    for part in (scope["path"].encode(), scope.get("query_string", b""), content_type, body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _problem(status: int, detail: str, code: str, *, retry_after: int | None = None) -> Response:
    return problem(status, detail, code, headers={"Retry-After": str(retry_after)} if retry_after is not None else None)


def _replay(answer: _Stored) -> Response:
    response = Response(answer.body, status_code=answer.status)
    # Starlette set content-length; the first answer's own headers follow, and the mark of a replay.
    response.raw_headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    response.raw_headers.append(REPLAYED)
    return response


def post_paths(routers: Iterable[APIRouter], prefix: str) -> list[str]:
    """The full paths of the routers' POST routes once mounted under `prefix`."""
    return [prefix + route.path for router in routers for route in router.routes
            if isinstance(route, APIRoute) and "POST" in (route.methods or ())]
