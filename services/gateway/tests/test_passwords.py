"""Closed registration, changing one's own password and an admin's reset: who may, and what each revokes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.security import refresh_token_hash
from rf_testsupport.gateway import API, PASSWORD, Gateway, User, start_gateway

NEW_PASSWORD = "a brand new passphrase"


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


async def _me(gateway: Gateway, access: str) -> int:
    r = await gateway.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {access}"})
    return r.status_code


async def _refresh(gateway: Gateway, refresh_token: str) -> int:
    return (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})).status_code


async def _login_status(gateway: Gateway, email: str, password: str) -> int:
    r = await gateway.client.post(f"{API}/auth/login/json", json={"email": email, "password": password})
    return r.status_code


# ---- closed registration -------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def closed(gateway: Gateway) -> AsyncIterator[Gateway]:
    """A second gateway on the same database, with RF_REGISTRATION=closed."""
    replicas = start_gateway(gateway.settings.kafka_bootstrap, gateway.settings.database_url,
                             jwt_private_key=gateway.private_pem, registration="closed")
    yield await replicas.__anext__()
    await replicas.aclose()


async def test_closed_registration_is_refused_with_a_code(closed: Gateway) -> None:
    email = _email("closed")
    r = await closed.client.post(f"{API}/auth/register", json={
        "email": email, "password": PASSWORD, "full_name": "N", "account_name": "Nope"})
    assert r.status_code == 403
    body = r.json()
    assert body["code"] == "registration_closed"
    assert "registration is closed" in body["detail"]
    assert await closed.scalar("SELECT count(*) FROM users WHERE email = :e", e=email) == 0


async def test_closed_registration_still_lets_admins_add_users(gateway: Gateway, closed: Gateway) -> None:
    admin, _ = await gateway.register()  # an account that existed before registration was closed
    added = await closed.add_user(await closed.login(admin.email), "engineer")
    assert await _me(closed, added.access) == 200


async def test_registration_is_open_by_default(gateway: Gateway) -> None:
    assert gateway.settings.registration == "open"
    await gateway.register()


# ---- changing one's own password -----------------------------------------------------------------------

async def _change(gateway: Gateway, user: User, current: str, new: str) -> tuple[int, dict[str, object] | None]:
    r = await gateway.client.post(f"{API}/auth/password", headers=user.headers,
                                  json={"current_password": current, "new_password": new})
    return r.status_code, (r.json() if r.content else None)


async def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    engineer = await gateway.add_user(admin, "engineer")
    other_session = await gateway.login(engineer.email)

    assert await _change(gateway, engineer, PASSWORD, NEW_PASSWORD) == (204, None)

    assert await _login_status(gateway, engineer.email, PASSWORD) == 401
    assert await _login_status(gateway, engineer.email, NEW_PASSWORD) == 200
    # The other session: its access token is denied and its refresh family revoked.
    assert await _me(gateway, other_session.access) == 401
    assert await _refresh(gateway, other_session.refresh) == 401
    # This session goes on: its access token still works and its refresh token still rotates.
    assert await _me(gateway, engineer.access) == 200
    assert await _refresh(gateway, engineer.refresh) == 200
    # The revocation reaches the other services through the denial feed.
    denied = await gateway.scalar("SELECT reason FROM revoked_access_tokens WHERE jti = "
                                  "(SELECT access_jti FROM refresh_tokens WHERE token_hash = :h)",
                                  h=refresh_token_hash(other_session.refresh))
    assert denied == "revoked"


async def test_a_wrong_current_password_is_refused_and_changes_nothing(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    other_session = await gateway.login(admin.email)
    status, body = await _change(gateway, admin, "not my password", NEW_PASSWORD)
    assert status == 403
    assert body == {"detail": "the current password is incorrect", "code": "wrong_password"}
    assert await _login_status(gateway, admin.email, PASSWORD) == 200
    assert await _login_status(gateway, admin.email, NEW_PASSWORD) == 401
    assert await _me(gateway, other_session.access) == 200


async def test_wrong_current_passwords_are_throttled(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    limit = gateway.settings.login_max_failures_per_email
    for _ in range(limit):
        assert (await _change(gateway, admin, "guess", NEW_PASSWORD))[0] == 403
    r = await gateway.client.post(f"{API}/auth/password", headers=admin.headers,
                                  json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert await _login_status(gateway, admin.email, PASSWORD) == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
    ({"current_password": PASSWORD, "new_password": "x" * 129}, "new_password"),
    ({"new_password": NEW_PASSWORD}, "current_password"),
    ({"current_password": PASSWORD}, "new_password"),
    ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "role": "admin"}, "role"),
], ids=["too-short", "too-long", "no-current", "no-new", "unknown-field"])
async def test_an_invalid_password_change_is_422(gateway: Gateway, body: dict[str, str], field: str) -> None:
    admin, _ = await gateway.register()
    r = await gateway.client.post(f"{API}/auth/password", headers=admin.headers, json=body)
    assert r.status_code == 422
    assert field in r.text
    assert await _login_status(gateway, admin.email, PASSWORD) == 200


async def test_a_password_change_needs_a_token(gateway: Gateway) -> None:
    r = await gateway.client.post(f"{API}/auth/password",
                                  json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 401


# ---- an admin's reset ----------------------------------------------------------------------------------

async def _reset(gateway: Gateway, admin: User, user_id: str, new: str = NEW_PASSWORD) -> int:
    r = await gateway.client.post(f"{API}/users/{user_id}/password", headers=admin.headers, json={"new_password": new})
    return r.status_code


async def test_a_reset_ends_every_session_of_the_user(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    viewer = await gateway.add_user(admin, "viewer")
    second = await gateway.login(viewer.email)

    assert await _reset(gateway, admin, viewer.id) == 204

    for session in (viewer, second):
        assert await _me(gateway, session.access) == 401
        assert await _refresh(gateway, session.refresh) == 401
    assert await _login_status(gateway, viewer.email, PASSWORD) == 401
    assert await _login_status(gateway, viewer.email, NEW_PASSWORD) == 200
    # The admin's own session is untouched.
    assert await _me(gateway, admin.access) == 200


async def test_a_reset_lifts_a_login_lockout(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    viewer = await gateway.add_user(admin, "viewer")
    for _ in range(gateway.settings.login_max_failures_per_email):
        assert await _login_status(gateway, viewer.email, "guess") == 401
    assert await _login_status(gateway, viewer.email, PASSWORD) == 429
    assert await _reset(gateway, admin, viewer.id) == 204
    assert await _login_status(gateway, viewer.email, NEW_PASSWORD) == 200


async def test_another_accounts_user_cannot_be_reset(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    stranger_admin, _ = await gateway.register()
    stranger = await gateway.add_user(stranger_admin, "engineer")
    assert await _reset(gateway, admin, stranger.id) == 404
    assert await _reset(gateway, admin, str(uuid.uuid4())) == 404
    assert await _me(gateway, stranger.access) == 200
    assert await _login_status(gateway, stranger.email, PASSWORD) == 200


@pytest.mark.parametrize("role", ["viewer", "engineer"])
async def test_only_admins_reset(gateway: Gateway, role: str) -> None:
    admin, _ = await gateway.register()
    caller = await gateway.add_user(admin, role)
    target = await gateway.add_user(admin, "viewer")
    assert await _reset(gateway, caller, target.id) == 403
    assert await _login_status(gateway, target.email, PASSWORD) == 200


@pytest.mark.parametrize("body", [{"new_password": "short"}, {}, {"new_password": NEW_PASSWORD, "x": 1}],
                         ids=["too-short", "missing", "unknown-field"])
async def test_an_invalid_reset_is_422(gateway: Gateway, body: dict[str, object]) -> None:
    admin, _ = await gateway.register()
    target = await gateway.add_user(admin, "viewer")
    r = await gateway.client.post(f"{API}/users/{target.id}/password", headers=admin.headers, json=body)
    assert r.status_code == 422
    assert await _me(gateway, target.access) == 200
