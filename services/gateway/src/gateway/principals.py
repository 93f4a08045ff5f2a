"""The check every authenticated request goes through here: the token's user (or API key) still stands as the token
says."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from uuid import UUID

from gateway.domain import API_KEY_TOKEN_PREFIX, KeyGrant, PrincipalState, TokenRejected, is_api_key_token
from gateway.uow import GatewayUnitOfWork
from rfkit.auth import Principal
from rfkit.db import Database
from rfkit.denials import DENIAL_DETAIL


class PrincipalCache:
    """Per-process memory of tokens found valid, for at most `ttl_s`; bounds how stale a revocation can be."""

    def __init__(self, ttl_s: float, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._valid_until: dict[str, float] = {}
        self.generation = 0

    def is_fresh(self, token_id: str) -> bool:
        until = self._valid_until.get(token_id)
        return until is not None and until > time.monotonic()

    def remember(self, token_id: str, generation: int) -> None:
        """Remember a token found valid by a check that began at `generation` (unless cleared since)."""
        if self.ttl_s <= 0 or generation != self.generation:
            return
        if len(self._valid_until) >= self.max_entries:
            self._valid_until.clear()
        self._valid_until[token_id] = time.monotonic() + self.ttl_s

    def clear(self) -> None:
        """Forget everything (after a revocation); a check already under way then remembers nothing either."""
        self.generation += 1
        self._valid_until.clear()


class PrincipalCheck:
    """The token's user still exists, is active, has the token's role and account; the token is not revoked.

    rfkit.auth calls it (as `app.state.principal_check`) after the signature, issuer, audience and expiry checks.
    Identity use cases that revoke anything clear `cache`.

    A token issued for an API key (gateway.key_exchange) has no user: when this process's exchange has just
    swapped the key for it (`exchanged`), the exchange vouched for the key at most `recheck_s` ago and nothing is
    looked up; such a token presented as it is (it never leaves the gateway and the services, but if it did) is
    checked against its key instead (not revoked, not expired, same account and role).
    """

    def __init__(self, db: Database, cache: PrincipalCache) -> None:
        self._db = db
        self.cache = cache
        self._inflight: dict[tuple[str, int], asyncio.Future[PrincipalState | None]] = {}

    async def __call__(self, principal: Principal, *, exchanged: bool = False) -> None:
        cache = self.cache
        if is_api_key_token(principal.token_id):
            if not exchanged:
                await self._check_key(principal)
            return
        if cache.is_fresh(principal.token_id):
            return
        generation = cache.generation
        # Concurrent requests with one token share one query (when the cached answer expires they all miss at
        # once). A query begun before a revocation (an older generation) is not joined.
        key = (principal.token_id, generation)
        query = self._inflight.get(key)
        if query is None:
            query = asyncio.ensure_future(self._state(principal.user_id, principal.token_id))
            self._inflight[key] = query
            query.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one caller giving up (a client disconnect) must not cancel the query the others wait for.
        state = await asyncio.shield(query)
        if state is None:
            raise TokenRejected("unknown user")
        if state.denied is not None:
            raise TokenRejected(DENIAL_DETAIL[state.denied])
        if not state.is_active:
            raise TokenRejected("user deactivated")
        if state.account_id != principal.account_id:
            raise TokenRejected("account mismatch")
        if state.role != principal.role:
            # A changed role takes effect now, not when the token expires: the client refreshes to get it.
            raise TokenRejected("role changed, refresh the token")
        cache.remember(principal.token_id, generation)

    async def _check_key(self, principal: Principal) -> None:
        # All of a key's tokens share one `jti`: remembered with what else the token claims.
        remembered = f"{principal.token_id} {principal.account_id} {principal.role}"
        if self.cache.is_fresh(remembered):
            return
        generation = self.cache.generation
        async with self._db.unit_of_work(GatewayUnitOfWork) as uow:
            grant = await uow.api_keys.grant_by_id_any_account(key_id=principal.user_id, now=datetime.now(UTC))
        if not _token_of(grant, principal):
            raise TokenRejected("API key revoked, expired or unknown")
        self.cache.remember(remembered, generation)

    async def _state(self, user_id: UUID, token_id: str) -> PrincipalState | None:
        async with self._db.unit_of_work(GatewayUnitOfWork) as uow:
            return await uow.users.principal_state_any_account(user_id=user_id, token_id=token_id)


def _token_of(grant: KeyGrant | None, principal: Principal) -> bool:
    """Whether the token is one the exchange would issue for this (valid) key now."""
    return (grant is not None and principal.token_id == f"{API_KEY_TOKEN_PREFIX}{grant.key_id}"
            and grant.account_id == principal.account_id and grant.role == principal.role)
