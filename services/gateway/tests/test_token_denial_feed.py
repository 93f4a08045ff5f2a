"""The token-denial feed the other services follow: what it serves, in which order, and never a gap."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from gateway.repository import TokenRepository, revoked_access_tokens
from rf_testsupport.gateway import Gateway

FEED = "/internal/v1/token-denials"


async def _feed(gateway: Gateway, after: int = 0) -> list[dict[str, Any]]:
    r = await gateway.client.get(FEED, params={"after": after})
    assert r.status_code == 200, r.text
    return r.json()["denials"]  # type: ignore[no-any-return]


async def _last_seq(gateway: Gateway) -> int:
    return max((item["seq"] for item in await _feed(gateway)), default=0)


async def _served(gateway: Gateway, after: int, count: int) -> list[dict[str, Any]]:
    """The feed after `after` once it holds `count` rows: a row is served when no older transaction runs on the
    server (on a server shared with other tests that can take a moment), so the test polls with a deadline."""
    deadline = asyncio.get_running_loop().time() + 30
    while len(served := await _feed(gateway, after)) < count:
        assert asyncio.get_running_loop().time() < deadline, served
        await asyncio.sleep(0.05)
    return served


async def test_logout_puts_the_access_token_on_the_feed_with_its_expiry(gateway: Gateway) -> None:
    user, _ = await gateway.register()
    before = await _last_seq(gateway)
    r = await gateway.client.post("/api/v1/auth/logout", headers=user.headers)
    assert r.status_code == 204
    [denial] = await _served(gateway, before, 1)
    claims = _claims(user.access)
    assert denial["jti"] == claims["jti"]
    assert denial["reason"] == "revoked"
    assert datetime.fromisoformat(denial["expires_at"]) >= datetime.fromtimestamp(claims["exp"], UTC)


async def test_deactivation_and_demotion_deny_live_tokens_with_their_reason(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    demoted = await gateway.add_user(admin, "engineer")
    gone = await gateway.add_user(admin, "engineer")
    before = await _last_seq(gateway)
    r = await gateway.client.patch(f"/api/v1/users/{demoted.id}", headers=admin.headers, json={"role": "viewer"})
    assert r.status_code == 200, r.text
    r = await gateway.client.patch(f"/api/v1/users/{gone.id}", headers=admin.headers, json={"is_active": False})
    assert r.status_code == 200, r.text
    reasons = {item["jti"]: item["reason"] for item in await _served(gateway, before, 2)}
    assert reasons == {_claims(demoted.access)["jti"]: "role_changed", _claims(gone.access)["jti"]: "user_deactivated"}
    # The gateway answers the same reasons itself.
    assert (await gateway.client.get("/api/v1/auth/me", headers=demoted.headers)).json()["detail"] == (
        "invalid token: role changed, refresh the token")
    assert (await gateway.client.get("/api/v1/auth/me", headers=gone.headers)).json()["detail"] == (
        "invalid token: user deactivated")


async def test_a_denial_committed_late_is_not_skipped(gateway: Gateway) -> None:
    """A follower moves its cursor past every seq it is served: a smaller seq committed after that would be lost,
    so the feed holds back rows until every transaction that could still commit a smaller seq has ended."""
    user_id = uuid.uuid4()
    expires = datetime.now(UTC) + timedelta(minutes=10)
    before = await _last_seq(gateway)
    async with gateway.engine.connect() as slow:
        transaction = await slow.begin()
        await TokenRepository(slow).deny_access_token(jti=f"slow-{user_id}", user_id=user_id, expires_at=expires)  # type: ignore[arg-type]
        async with gateway.engine.begin() as fast:
            await TokenRepository(fast).deny_access_token(jti=f"fast-{user_id}", user_id=user_id, expires_at=expires)  # type: ignore[arg-type]
        # Committed, but behind the open transaction's smaller seq: not served yet.
        assert [item["jti"] for item in await _feed(gateway, before)] == []
        await transaction.commit()
    assert [item["jti"] for item in await _served(gateway, before, 2)] == [f"slow-{user_id}", f"fast-{user_id}"]


async def test_expired_denials_are_not_served(gateway: Gateway) -> None:
    before = await _last_seq(gateway)
    now = datetime.now(UTC)
    async with gateway.engine.begin() as conn:
        for jti, expires in ((f"old-{uuid.uuid4()}", now - timedelta(seconds=1)),
                             (f"live-{uuid.uuid4()}", now + timedelta(minutes=10))):
            await conn.execute(sa.insert(revoked_access_tokens).values(
                jti=jti, user_id=uuid.uuid4(), expires_at=expires))
    # Both were written in one transaction: once the live one is served, the expired one would be too.
    [served] = await _served(gateway, before, 1)
    assert served["jti"].startswith("live-")


async def test_the_feed_refuses_a_bad_cursor(gateway: Gateway) -> None:
    for after in ("-1", "x", str(2**63)):
        r = await gateway.client.get(FEED, params={"after": after})
        assert r.status_code == 422, (after, r.text)


def _claims(token: str) -> dict[str, Any]:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]
