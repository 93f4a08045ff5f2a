"""API keys at the door: a `Bearer rf_...` secret is exchanged for a short-lived access token before any route.

Nothing behind the gateway ever sees a key. The gateway looks the key up in its database (at most once every
`recheck_s` per key and process), signs an access token for it (`sub` = the key's id, the key's account and role,
`jti` = `apikey-<key id>`) and puts that token in the request's Authorization header; the gateway's routes and
every service then check it as they check any access token, locally, without a round trip. Revoking a key denies
`apikey-<key id>` through the token-denial feed every service follows (within about a second), and each gateway
process sees the revocation at its next look-up (within `recheck_s`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gateway.domain import API_KEY_TOKEN_PREFIX, KeyGrant
from gateway.security import KEY_PREFIX, TokenIssuer, api_key_hash
from rfkit.asgi import HttpMiddleware
from rfkit.errors import Unavailable

# The request scope's mark of a request whose key this process's exchange vouched for (gateway.principals).
EXCHANGED = "rf.api_key_exchanged"
# A minted token is replaced this long before it expires, so a forwarded request never carries a dying token.
_RENEW_BEFORE_S = 60


def api_key_token_id(key_id: UUID) -> str:
    """The `jti` of every access token issued for the key: one denial covers them all."""
    return f"{API_KEY_TOKEN_PREFIX}{key_id}"


# (secret hash, now) -> the grant of a valid key (not revoked, not expired), recording its use; else None.
KeyLookup = Callable[[str, datetime], Awaitable[KeyGrant | None]]


@dataclass
class _Entry:
    grant: KeyGrant | None
    checked_at: float
    token: bytes = b""
    token_expires_at: float = 0.0


class KeyExchange:
    """The per-process memory of looked-up keys and the tokens issued for them (bounded, least recent evicted)."""

    def __init__(
        self, lookup: KeyLookup, issuer: TokenIssuer, *, recheck_s: float = 2.0, max_entries: int = 10_000
    ) -> None:
        self._lookup = lookup
        self._issuer = issuer
        self.recheck_s = recheck_s
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[KeyGrant | None]] = {}
        # Counts forget() calls: a look-up begun before one must not put back what it dropped.
        self._generation = 0

    def forget(self, secret_hash: str | None = None) -> None:
        """Drop what is known of one key (or of all): the next request looks it up again."""
        self._generation += 1
        if secret_hash is None:
            self._entries.clear()
            self._inflight.clear()
        else:
            self._entries.pop(secret_hash, None)
            self._inflight.pop(secret_hash, None)

    async def token_for(self, secret: str) -> bytes | None:
        """An access token for the key, or None when the key is unknown, revoked or expired."""
        digest = api_key_hash(secret)
        now = time.time()
        entry = self._entries.get(digest)
        if entry is None or time.monotonic() - entry.checked_at >= self.recheck_s:
            generation = self._generation
            grant = await self._look_up(digest)
            entry = _Entry(grant=grant, checked_at=time.monotonic())
            old = self._entries.get(digest)
            if old is not None and old.grant == grant:
                entry.token, entry.token_expires_at = old.token, old.token_expires_at
            # A revocation here while the query ran: its answer may predate it, so it serves only the request that
            # was already under way and is not remembered for the next ones.
            if generation == self._generation:
                self._entries[digest] = entry
                self._entries.move_to_end(digest)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        grant = entry.grant
        if grant is None or (grant.expires_at is not None and grant.expires_at.timestamp() <= now):
            return None
        if entry.token_expires_at - now < _RENEW_BEFORE_S:
            ttl = self._issuer.ttl_s
            if grant.expires_at is not None:
                ttl = max(1, min(ttl, int(grant.expires_at.timestamp() - now)))
            issued = self._issuer.access(
                user_id=grant.key_id, account_id=grant.account_id, role=grant.role,
                token_id=api_key_token_id(grant.key_id), ttl_s=ttl,
            )
            entry.token, entry.token_expires_at = issued.token.encode(), now + ttl
        return entry.token

    async def _look_up(self, digest: str) -> KeyGrant | None:
        # Concurrent requests with one key share one query; shielded so that one caller leaving cancels nothing.
        query = self._inflight.get(digest)
        if query is None:
            query = asyncio.ensure_future(self._lookup(digest, datetime.now(UTC)))
            self._inflight[digest] = query
            query.add_done_callback(
                lambda done: self._inflight.pop(digest) if self._inflight.get(digest) is done else None
            )
        return await asyncio.shield(query)


class ApiKeyAuth(HttpMiddleware):
    """Pure ASGI: swaps `Authorization: Bearer rf_...` for an access token; an invalid key is a 401 here."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        for index, (name, value) in enumerate(headers):
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                credential = credential.strip()
                if scheme.lower() == b"bearer" and credential.startswith(KEY_PREFIX.encode()):
                    exchange: KeyExchange | None = getattr(scope["app"].state, "key_exchange", None)
                    token = None
                    try:
                        if exchange is not None:
                            token = await exchange.token_for(credential.decode("latin-1"))
                    except Unavailable as exc:
                        # Raised here, outside the routes: the app's exception handlers do not see it.
                        busy = JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=503,
                                            headers={"Retry-After": str(exc.retry_after_s or 1)})
                        await busy(scope, receive, send)
                        return
                    if token is None:
                        answer = JSONResponse(
                            {"detail": "invalid API key: unknown, revoked or expired", "code": "invalid_api_key"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"},
                        )
                        await answer(scope, receive, send)
                        return
                    swapped = list(headers)
                    swapped[index] = (b"authorization", b"Bearer " + token)
                    scope = {**scope, "headers": swapped, EXCHANGED: token}
                break
        await self.app(scope, receive, send)
