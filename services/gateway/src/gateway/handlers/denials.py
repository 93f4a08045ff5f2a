"""The token-denial feed the other services follow (rfkit.denials): denied, unexpired access tokens in order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.uow import GatewayUnitOfWork
from rfkit.db import Database


async def token_denials(*, after: int, limit: int, db: Database) -> dict[str, Any]:
    async with db.unit_of_work(GatewayUnitOfWork) as uow:
        denials = await uow.tokens.denials_after_any_account(after=after, now=datetime.now(UTC), limit=limit)
    return {"denials": [{"seq": d.seq, "jti": d.jti, "expires_at": d.expires_at.isoformat(), "reason": d.reason}
                        for d in denials]}
