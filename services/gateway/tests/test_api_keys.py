"""API keys at the gateway: who manages them, the secret shown once, the exchange at the door, revocation here and
on a second gateway process, expiry, last use, and a key's token presented as it is."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gateway.domain import KeyGrant
from gateway.key_exchange import KeyExchange, KeyLookup
from gateway.security import SHOWN_PREFIX, TokenIssuer, api_key_hash
from rf_testsupport.gateway import API, Gateway, User, start_gateway
from rfkit.auth import generate_keypair

FEED = "/internal/v1/token-denials"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _create(gateway: Gateway, admin: User, role: str, **extra: Any) -> dict[str, Any]:
    r = await gateway.client.post(f"{API}/api-keys", headers=admin.headers,
                                  json={"name": f"{role} robot", "role": role, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Polls `check` until it holds (a 30 s deadline: a shared machine can be slow, never this slow)."""
    deadline = asyncio.get_running_loop().time() + 30
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def test_the_secret_is_shown_once_and_stored_only_as_a_hash(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    created = await _create(gateway, admin, "engineer")
    secret = created["secret"]
    assert secret.startswith("rf_") and created["prefix"] == secret[:SHOWN_PREFIX]
    assert created["created_by"] == admin.id and created["account_id"] == admin.account_id
    assert created["revoked_at"] is None and created["last_used_at"] is None

    listed = await gateway.client.get(f"{API}/api-keys", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 1
    [item] = listed.json()["items"]
    assert item["id"] == created["id"] and item["prefix"] == created["prefix"]
    assert "secret" not in item and secret not in listed.text
    stored = await gateway.scalar("SELECT secret_hash FROM api_keys WHERE id = :id", id=uuid.UUID(created["id"]))
    assert stored == api_key_hash(secret) and secret not in stored


async def test_a_key_acts_at_its_role_and_not_as_a_person(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    admin_key = (await _create(gateway, admin, "admin"))["secret"]
    viewer_key = (await _create(gateway, admin, "viewer"))["secret"]

    assert (await gateway.client.get(f"{API}/users", headers=_bearer(admin_key))).status_code == 200
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(viewer_key))).status_code == 403
    for method, path, body in [("GET", "/auth/me", None), ("POST", "/auth/logout", None),
                               ("POST", "/auth/password", {"current_password": "x" * 12, "new_password": "y" * 12}),
                               ("GET", "/api-keys", None),
                               ("POST", "/api-keys", {"name": "spawned", "role": "admin"})]:
        r = await gateway.client.request(method, API + path, json=body, headers=_bearer(admin_key))
        assert r.status_code == 403, (path, r.text)
        assert r.json()["code"] == "api_key_not_allowed", path
    # The key still works after all that (a logout attempt revoked nothing).
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(admin_key))).status_code == 200


async def test_only_admins_manage_keys_and_only_their_accounts(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    key = await _create(gateway, admin, "viewer")
    for role in ("viewer", "engineer"):
        member = await gateway.add_user(admin, role)
        for method, path, body in [("POST", "/api-keys", {"name": "n", "role": "viewer"}), ("GET", "/api-keys", None),
                                   ("DELETE", f"/api-keys/{key['id']}", None)]:
            r = await gateway.client.request(method, API + path, json=body, headers=member.headers)
            assert r.status_code == 403, (role, method, r.text)
    assert (await gateway.client.post(f"{API}/api-keys", json={"name": "n", "role": "viewer"})).status_code == 401

    other, _ = await gateway.register()
    for key_id in (key["id"], str(uuid.uuid4())):
        r = await gateway.client.delete(f"{API}/api-keys/{key_id}", headers=other.headers)
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "api_key_not_found"
    assert (await gateway.client.get(f"{API}/api-keys", headers=other.headers)).json()["total"] == 0
    # Still the owner's, unrevoked.
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(key["secret"]))).status_code == 403


async def test_bad_input_is_a_422(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await gateway.client.post(f"{API}/api-keys", headers=admin.headers,
                                  json={"name": "late", "role": "viewer", "expires_at": past})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "api_key_expiry_in_past"
    for body in [{"name": "x", "role": "owner"}, {"name": "", "role": "viewer"},
                 {"name": "x", "role": "viewer", "expires_at": "2030-01-01T00:00:00"},  # no offset
                 {"name": "x", "role": "viewer", "secret": "rf_mine"}]:
        assert (await gateway.client.post(f"{API}/api-keys", headers=admin.headers, json=body)).status_code == 422
    r = await gateway.client.delete(f"{API}/api-keys/not-a-uuid", headers=admin.headers)
    assert r.status_code == 422


async def test_an_unknown_key_is_refused_with_its_code(gateway: Gateway) -> None:
    for credential in ("rf_" + "A" * 43, "rf_", "rf_\u00e9"):
        r = await gateway.client.get(f"{API}/users", headers={"Authorization": f"Bearer {credential}".encode()})
        assert r.status_code == 401, credential
        assert r.json()["code"] == "invalid_api_key"
        assert r.headers["www-authenticate"] == "Bearer"


async def test_revocation_is_immediate_here_idempotent_and_on_the_feed(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    key = await _create(gateway, admin, "admin")
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(key["secret"]))).status_code == 200

    r = await gateway.client.delete(f"{API}/api-keys/{key['id']}", headers=admin.headers)
    assert r.status_code == 204, r.text
    r = await gateway.client.get(f"{API}/users", headers=_bearer(key["secret"]))
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"

    first = await gateway.scalar("SELECT revoked_at FROM api_keys WHERE id = :id", id=uuid.UUID(key["id"]))
    assert (await gateway.client.delete(f"{API}/api-keys/{key['id']}", headers=admin.headers)).status_code == 204
    assert await gateway.scalar("SELECT revoked_at FROM api_keys WHERE id = :id", id=uuid.UUID(key["id"])) == first
    [listed] = (await gateway.client.get(f"{API}/api-keys", headers=admin.headers)).json()["items"]
    assert listed["revoked_at"] is not None

    async def on_feed() -> bool:
        denials = (await gateway.client.get(FEED)).json()["denials"]
        return any(d["jti"] == f"apikey-{key['id']}" and d["reason"] == "api_key_revoked" for d in denials)

    await _until(on_feed, "the revoked key's tokens are not on the denial feed")


async def test_use_is_recorded(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    key = await _create(gateway, admin, "viewer")
    before = datetime.now(UTC)
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(key["secret"]))).status_code == 403
    [listed] = (await gateway.client.get(f"{API}/api-keys", headers=admin.headers)).json()["items"]
    assert listed["last_used_at"] is not None
    assert datetime.fromisoformat(listed["last_used_at"]) >= before - timedelta(seconds=1)


async def test_an_expired_key_stops_working(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    key = await _create(gateway, admin, "admin", expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(key["secret"]))).status_code == 200
    # Brought forward to expire in a moment (rather than created so: the first use must not race the expiry).
    await gateway.scalar("UPDATE api_keys SET expires_at = now() + interval '1 second' WHERE id = :id RETURNING id",
                         id=uuid.UUID(key["id"]))

    async def refused() -> bool:
        r = await gateway.client.get(f"{API}/users", headers=_bearer(key["secret"]))
        assert r.status_code in (200, 401), r.text
        return r.status_code == 401 and r.json()["code"] == "invalid_api_key"

    await _until(refused, "an expired key still works")


async def test_a_keys_token_presented_as_it_is_is_checked_against_the_key(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    key = await _create(gateway, admin, "admin")
    s = gateway.settings
    issuer = TokenIssuer(gateway.private_pem, issuer=s.jwt_issuer, audience=s.jwt_audience, ttl_s=300)
    key_id, account_id = uuid.UUID(key["id"]), uuid.UUID(admin.account_id)
    token = issuer.access(user_id=key_id, account_id=account_id, role="admin", token_id=f"apikey-{key_id}").token
    assert (await gateway.client.get(f"{API}/users", headers=_bearer(token))).status_code == 200
    # The key's token with a role the key does not have, or another key's id, is refused.
    for user_id, role, jti in [(key_id, "viewer", f"apikey-{key_id}"), (key_id, "admin", f"apikey-{uuid.uuid4()}")]:
        forged = issuer.access(user_id=user_id, account_id=account_id, role=role, token_id=jti).token  # type: ignore[arg-type]
        assert (await gateway.client.get(f"{API}/users", headers=_bearer(forged))).status_code == 401

    assert (await gateway.client.delete(f"{API}/api-keys/{key_id}", headers=admin.headers)).status_code == 204
    r = await gateway.client.get(f"{API}/users", headers=_bearer(token))
    assert r.status_code == 401, r.text


async def test_a_second_gateway_process_sees_a_revocation_within_its_recheck(
    gateway: Gateway, kafka_bootstrap: str
) -> None:
    admin, _ = await gateway.register()
    key = await _create(gateway, admin, "admin")
    async for second in start_gateway(kafka_bootstrap, gateway.settings.database_url,
                                      jwt_private_key=gateway.private_pem, api_key_recheck_s=0.2):
        assert (await second.client.get(f"{API}/users", headers=_bearer(key["secret"]))).status_code == 200
        assert (await gateway.client.delete(f"{API}/api-keys/{key['id']}", headers=admin.headers)).status_code == 204

        async def refused(client: httpx.AsyncClient = second.client) -> bool:
            r = await client.get(f"{API}/users", headers=_bearer(key["secret"]))
            assert r.status_code in (200, 401), r.text
            return r.status_code == 401 and r.json()["code"] == "invalid_api_key"

        await _until(refused, "the second gateway still accepts a revoked key")


def _exchange(lookup: KeyLookup) -> KeyExchange:
    return KeyExchange(lookup, TokenIssuer(generate_keypair()[0], issuer="i", audience="a", ttl_s=300),
                       recheck_s=3600)


async def test_a_look_up_under_way_when_the_key_is_forgotten_is_not_remembered() -> None:
    grant = KeyGrant(key_id=uuid.uuid4(), account_id=uuid.uuid4(), role="viewer", expires_at=None)
    release = asyncio.Event()
    calls: list[str] = []

    async def lookup(secret_hash: str, now: datetime) -> KeyGrant | None:
        calls.append(secret_hash)
        await release.wait()
        return grant

    exchange = _exchange(lookup)
    first = [asyncio.create_task(exchange.token_for("rf_secret")) for _ in range(5)]
    await _until(lambda: asyncio.sleep(0, bool(calls)), "no look-up began")
    exchange.forget(api_key_hash("rf_secret"))  # a revocation commits while the query runs
    release.set()
    assert all(await asyncio.gather(*first))  # the requests already under way are served
    assert len(calls) == 1  # concurrent requests shared one query
    await exchange.token_for("rf_secret")
    assert len(calls) == 2  # but its answer was not remembered
    await exchange.token_for("rf_secret")
    assert len(calls) == 2
