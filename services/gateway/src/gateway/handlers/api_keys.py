"""An admin managing the account's API keys (create, list, revoke), and the look-up of a presented key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from gateway.domain import ApiKey, ApiKeyExpiryInPast, ApiKeyNotFound, KeyGrant, Role, public_fields
from gateway.principals import PrincipalCache
from gateway.security import SHOWN_PREFIX, api_key_hash, new_api_key_secret
from gateway.uow import GatewayUnitOfWork
from rf_contracts.api.api_keys import ApiKeyCreated, ApiKeyPage, ApiKeyRead
from rfkit.clock import utcnow
from rfkit.db import Database

# Denials outlive the last token issued for the key by this much: services accept a token a few seconds past its
# `exp` (the verifier's leeway), and another gateway may mint one until it next looks the key up (recheck_s).
_DENIAL_MARGIN = timedelta(seconds=60)


class KnownKeys(Protocol):
    """What this process remembers of presented keys (gateway.key_exchange.KeyExchange)."""

    def forget(self, secret_hash: str | None = None) -> None: ...


@dataclass(frozen=True)
class CreateApiKey:
    account_id: UUID
    created_by: UUID  # the admin creating it
    name: str
    role: Role
    expires_at: datetime | None


@dataclass(frozen=True)
class RevokeApiKey:
    account_id: UUID
    key_id: UUID


async def create_api_key(cmd: CreateApiKey, *, db: Database) -> ApiKeyCreated:
    """A new key; the answer is the only place its secret ever appears (only its hash is stored)."""
    now = utcnow()
    if cmd.expires_at is not None and cmd.expires_at <= now:
        raise ApiKeyExpiryInPast()
    secret = new_api_key_secret()
    key = ApiKey(
        id=uuid.uuid4(), account_id=cmd.account_id, name=cmd.name, role=cmd.role, prefix=secret[:SHOWN_PREFIX],
        secret_hash=api_key_hash(secret), created_by=cmd.created_by, created_at=now,
        expires_at=cmd.expires_at.astimezone(UTC) if cmd.expires_at else None, last_used_at=None, revoked_at=None,
    )
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        await uow.api_keys.add(key=key)
    return ApiKeyCreated(**public_fields(key), secret=secret)


async def list_api_keys(*, account_id: UUID, limit: int, offset: int, db: Database) -> ApiKeyPage:
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        keys, total = await uow.api_keys.page(account_id=account_id, limit=limit, offset=offset)
    return ApiKeyPage(items=[ApiKeyRead(**public_fields(k)) for k in keys], total=total, limit=limit, offset=offset)


async def revoke_api_key(
    cmd: RevokeApiKey, *, db: Database, known: KnownKeys, principals: PrincipalCache, token_ttl_s: int
) -> None:
    """Revoke a key: this gateway refuses it at once, the services within about a second (the token-denial feed),
    other gateway processes at their next look-up. Revoking a revoked key changes nothing (idempotent)."""
    now = utcnow()
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        key = await uow.api_keys.get(account_id=cmd.account_id, key_id=cmd.key_id, lock=True)
        if key is None:
            raise ApiKeyNotFound()
        if key.revoked_at is None:
            await uow.api_keys.revoke(account_id=cmd.account_id, key_id=cmd.key_id, now=now,
                                      deny_until=now + timedelta(seconds=token_ttl_s) + _DENIAL_MARGIN)
    known.forget(key.secret_hash)
    principals.clear()


async def grant_for(secret_hash: str, now: datetime, *, db: Database) -> KeyGrant | None:
    """The exchange's look-up (gateway.key_exchange.KeyLookup): a valid key's grant, its use recorded."""
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        return await uow.api_keys.grant_by_secret_any_account(secret_hash=secret_hash, now=now)

