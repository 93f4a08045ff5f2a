"""API keys through the gateway with the real services: a key acts at its role in every service, and once revoked
it is refused by the gateway at once and by every service within seconds (their token-denial feed)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from gateway.security import TokenIssuer
from gateway.settings import Settings as GatewaySettings
from rf_testsupport.gateway import User

# A read each service answers for an engineer: only the token is checked.
READS = {
    "sessions": "/api/v1/sessions",
    "handoffs": "/api/v1/handoffs",
    "analytics": "/api/v1/analytics/flowpilot/escalations?period=7d",
}


async def _key(api: Any, admin: User, role: str) -> tuple[dict[str, Any], User]:
    """A new key of `role`, and a caller sending it as its bearer credential."""
    created = await api.ok("POST", "/api-keys", admin, 201, json={"name": f"{role} robot", "role": role})
    caller = User(created["id"], created["account_id"], "", role, created["secret"], "")
    return created, caller


async def test_keys_read_and_write_at_their_role_across_services(api: Any) -> None:
    team = await api.account()
    viewer_key, viewer = await _key(api, team.admin, "viewer")
    engineer_key, engineer = await _key(api, team.admin, "engineer")

    tree = await api.tree(engineer)
    assert (await api.call("GET", f"/trees/{tree['id']}", viewer)).status_code == 200
    assert (await api.call("POST", "/trees", viewer, json=api.tree_body())).status_code == 403
    session = await api.session(engineer, tree["id"])
    assert session["started_by"] == engineer_key["id"]
    step = await api.ok("POST", f"/sessions/{session['id']}/steps", engineer, 201,
                        json={"kind": "note", "content": "checked the cable", "actor_type": "ai"})
    assert step["content"] == "checked the cable"
    assert (await api.call("POST", f"/sessions/{session['id']}/steps", viewer,
                           json={"kind": "note", "content": "no", "actor_type": "ai"})).status_code == 403
    handoff = await api.handoff(engineer, session["id"])
    claimed = await api.ok("POST", f"/handoffs/{handoff['id']}/claim", engineer)
    assert claimed["claimed_by"] == engineer_key["id"]
    assert (await api.call("POST", f"/handoffs/{handoff['id']}/claim", viewer)).status_code == 403
    assert (await api.ok("GET", f"/handoffs/{handoff['id']}", viewer))["status"] == "claimed"
    assert (await api.call("GET", "/analytics/flowpilot/escalations?period=7d", viewer)).status_code == 403
    assert (await api.call("GET", "/analytics/flowpilot/escalations?period=7d", engineer)).status_code == 200

    # The list never shows a secret again; it shows that the keys were used.
    listed = await api.call("GET", "/api-keys", team.admin)
    assert listed.status_code == 200
    assert viewer.access not in listed.text and engineer.access not in listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert items.keys() == {viewer_key["id"], engineer_key["id"]}
    assert all(item["last_used_at"] is not None and "secret" not in item for item in items.values())

    # Only the account's admin manages them, and another account's admin sees no such key.
    other = await api.account("engineer")
    assert (await api.call("GET", "/api-keys", other.users["engineer"])).status_code == 403
    r = await api.call("DELETE", f"/api-keys/{engineer_key['id']}", other.admin)
    assert r.status_code == 404 and r.json()["code"] == "api_key_not_found"
    assert (await api.call("GET", "/sessions", engineer)).status_code == 200


async def test_a_revoked_key_is_refused_by_the_gateway_at_once_and_by_every_service_within_seconds(
    api: Any, stack: Any
) -> None:
    team = await api.account()
    created, engineer = await _key(api, team.admin, "engineer")
    assert (await api.call("GET", "/sessions", engineer)).status_code == 200
    # The services never see the key, only the access token the gateway exchanged it for: one with the same
    # claims, signed with the gateway's key (as gateway.key_exchange issues them).
    defaults = GatewaySettings.model_fields
    issuer = TokenIssuer(stack.private_pem, issuer=defaults["jwt_issuer"].default,
                         audience=defaults["jwt_audience"].default, ttl_s=600)
    key_id = uuid.UUID(created["id"])
    token = issuer.access(user_id=key_id, account_id=uuid.UUID(team.id), role="engineer",
                          token_id=f"apikey-{key_id}").token
    exchanged = {"Authorization": f"Bearer {token}"}
    directs = {name: httpx.AsyncClient(base_url=stack.urls[name], timeout=30) for name in READS}
    try:
        for name, path in READS.items():
            assert (await directs[name].get(path, headers=exchanged)).status_code == 200, name

        await api.ok("DELETE", f"/api-keys/{key_id}", team.admin, 204)
        r = await api.call("GET", "/sessions", engineer)
        assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"

        deadline = asyncio.get_running_loop().time() + 30
        pending = dict(READS)
        while pending:
            for name, path in list(pending.items()):
                r = await directs[name].get(path, headers=exchanged)
                if r.status_code == 401:
                    assert r.json()["detail"] == "invalid token: API key revoked", name
                    del pending[name]
                else:
                    assert r.status_code == 200, (name, r.text)
            assert asyncio.get_running_loop().time() < deadline, f"still accepted by {sorted(pending)}"
            await asyncio.sleep(0.1)
    finally:
        for client in directs.values():
            await client.aclose()
