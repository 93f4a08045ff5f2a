"""Identity flows through the gateway: register, log in, me, refresh rotation and reuse, logout, managing users."""

from __future__ import annotations

import hashlib
import uuid

import jwt
import pytest

from gateway.repository import UserRepository
from rf_testsupport.gateway import API, PASSWORD, Gateway


async def test_register_creates_an_account_and_its_first_admin(gateway: Gateway) -> None:
    r = await gateway.client.post(f"{API}/auth/register", json={
        "email": "  Founder@Example.COM ", "password": PASSWORD, "full_name": "Fran Founder", "account_name": "Acme",
    })
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["account"]["name"] == "Acme"
    assert body["user"]["email"] == "founder@example.com"
    assert body["user"]["role"] == "admin"
    assert body["user"]["is_active"] is True
    assert body["user"]["account_id"] == body["account"]["id"]
    assert "password" not in r.text and "hash" not in r.text
    stored = await gateway.scalar("SELECT password_hash FROM users WHERE email = 'founder@example.com'")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_registering_a_taken_email_in_another_case_gives_409(gateway: Gateway) -> None:
    await gateway.register(email="taken@example.com")
    r = await gateway.client.post(f"{API}/auth/register", json={
        "email": "TAKEN@example.com", "password": PASSWORD, "full_name": "Other", "account_name": "Other",
    })
    assert r.status_code == 409
    assert r.json() == {"detail": "a user with this email already exists", "code": "email_taken"}
    assert await gateway.scalar("SELECT count(*) FROM accounts WHERE name = 'Other'") == 0


async def test_a_registration_that_loses_the_race_for_an_email_gets_409_and_leaves_no_account(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two registrations of one email at once both pass the early check; the unique index decides at insert.
    await gateway.register(email="raced@example.com")

    async def not_taken(self: UserRepository, *, email: str) -> bool:
        return False

    monkeypatch.setattr(UserRepository, "email_taken_any_account", not_taken)
    r = await gateway.client.post(f"{API}/auth/register", json={
        "email": "raced@example.com", "password": PASSWORD, "full_name": "Late", "account_name": "Late",
    })
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": "a user with this email already exists", "code": "email_taken"}
    assert await gateway.scalar("SELECT count(*) FROM accounts WHERE name = 'Late'") == 0


@pytest.mark.parametrize("body", [
    {"email": "no-at-sign", "password": PASSWORD, "full_name": "A", "account_name": "B"},
    {"email": "a@example.com", "password": "short", "full_name": "A", "account_name": "B"},
    {"email": "a@example.com", "password": "x" * 129, "full_name": "A", "account_name": "B"},
    {"email": "a@example.com", "password": PASSWORD, "full_name": "", "account_name": "B"},
    {"email": "a@example.com", "password": PASSWORD, "full_name": "A\x00", "account_name": "B"},
    {"email": "a@example.com", "password": PASSWORD, "full_name": "A"},
    {"email": "a@example.com", "password": PASSWORD, "full_name": "A", "account_name": "B", "role": "admin"},
])
async def test_register_refuses_invalid_input_with_422(gateway: Gateway, body: dict) -> None:
    r = await gateway.client.post(f"{API}/auth/register", json=body)
    assert r.status_code == 422, r.text


async def test_login_with_the_oauth2_form_returns_a_bearer_pair(gateway: Gateway) -> None:
    admin, _ = await gateway.register(email="form@example.com")
    r = await gateway.client.post(f"{API}/auth/login", data={"username": "Form@Example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    me = await gateway.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == admin.id


async def test_access_token_is_eddsa_signed_with_the_expected_claims(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    assert jwt.get_unverified_header(admin.access)["alg"] == "EdDSA"
    claims = jwt.decode(admin.access, gateway.public_pem, algorithms=["EdDSA"], audience="resolutionflow",
                        issuer="resolutionflow-gateway")
    assert claims["sub"] == admin.id
    assert claims["acc"] == admin.account_id
    assert claims["role"] == "admin"
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


async def test_wrong_password_and_unknown_email_get_the_same_401(gateway: Gateway) -> None:
    await gateway.register(email="known@example.com")
    wrong = await gateway.client.post(f"{API}/auth/login/json", json={"email": "known@example.com", "password": "nope"})
    unknown = await gateway.client.post(f"{API}/auth/login/json",
                                        json={"email": "nobody@example.com", "password": "nope"})
    form = await gateway.client.post(f"{API}/auth/login", data={"username": "nobody@example.com", "password": "x"})
    for r in (wrong, unknown, form):
        assert r.status_code == 401
        assert r.json() == {"detail": "incorrect email or password", "code": "bad_credentials"}
        assert r.headers["www-authenticate"] == "Bearer"


async def test_me_describes_the_caller_and_its_account(gateway: Gateway) -> None:
    admin, registered = await gateway.register(email="me@example.com")
    r = await gateway.client.get(f"{API}/auth/me", headers=admin.headers)
    assert r.status_code == 200
    assert r.json() == {
        "id": admin.id, "email": "me@example.com", "full_name": "Ada Admin", "role": "admin",
        "account_id": registered["account"]["id"], "account_name": registered["account"]["name"],
    }


async def test_refresh_rotates_the_pair(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    r = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": admin.refresh})
    assert r.status_code == 200, r.text
    pair = r.json()
    assert pair["refresh_token"] != admin.refresh and pair["access_token"] != admin.access
    assert r.headers["cache-control"] == "no-store"
    me = await gateway.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    again = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 200


async def test_presenting_a_used_refresh_token_revokes_its_whole_family(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    other_login = await gateway.login(admin.email)  # another device: a family of its own
    rotated = (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": admin.refresh})).json()

    reuse = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": admin.refresh})
    assert reuse.status_code == 401
    # The thief's (or the victim's) newer tokens of that family die too...
    newer = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert newer.status_code == 401
    me = await gateway.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 401
    # ...while the other family is untouched.
    assert (await gateway.client.get(f"{API}/auth/me", headers=other_login.headers)).status_code == 200
    r = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": other_login.refresh})
    assert r.status_code == 200


# Malformed (empty, longer than any token we issue) is a 422 from the body's schema; well-formed but unknown is 401.
@pytest.mark.parametrize(("token", "status"), [("", 422), ("not-a-token", 401), ("x" * 600, 422)])
async def test_refresh_with_an_unknown_or_malformed_token_is_refused(gateway: Gateway, token: str, status: int) -> None:
    r = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": token})
    assert r.status_code == status, r.text


async def test_refresh_tokens_are_stored_only_as_hashes(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    digest = hashlib.sha256(admin.refresh.encode()).hexdigest()
    assert await gateway.scalar("SELECT count(*) FROM refresh_tokens WHERE token_hash = :h", h=digest) == 1
    assert await gateway.scalar("SELECT count(*) FROM refresh_tokens WHERE token_hash = :t", t=admin.refresh) == 0


async def test_logout_revokes_the_access_token_and_its_refresh_family(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    elsewhere = await gateway.login(admin.email)
    r = await gateway.client.post(f"{API}/auth/logout", headers=admin.headers)
    assert r.status_code == 204
    assert r.content == b""
    assert (await gateway.client.get(f"{API}/auth/me", headers=admin.headers)).status_code == 401
    refresh = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": admin.refresh})
    assert refresh.status_code == 401
    # Logging out on one device leaves the others signed in.
    assert (await gateway.client.get(f"{API}/auth/me", headers=elsewhere.headers)).status_code == 200


async def test_logout_after_a_refresh_revokes_the_rotated_family(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    pair = (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": admin.refresh})).json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await gateway.client.post(f"{API}/auth/logout", headers=headers)).status_code == 204
    assert (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            ).status_code == 401


async def test_logout_with_a_refresh_token_in_the_body_revokes_that_family_too(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    second = await gateway.login(admin.email)
    r = await gateway.client.post(f"{API}/auth/logout", headers=admin.headers,
                                  json={"refresh_token": second.refresh})
    assert r.status_code == 204
    assert (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": second.refresh})
            ).status_code == 401
    assert (await gateway.client.get(f"{API}/auth/me", headers=second.headers)).status_code == 401


async def test_logout_cannot_revoke_another_users_refresh_token(gateway: Gateway) -> None:
    mallory, _ = await gateway.register()
    victim, _ = await gateway.register()
    r = await gateway.client.post(f"{API}/auth/logout", headers=mallory.headers,
                                  json={"refresh_token": victim.refresh})
    assert r.status_code == 204
    assert (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": victim.refresh})
            ).status_code == 200


async def test_admin_lists_and_creates_the_accounts_users(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    engineer = await gateway.add_user(admin, "engineer", email="Eng.One@Example.com")
    await gateway.add_user(admin, "viewer")
    outsider, _ = await gateway.register()  # another account's users never show

    r = await gateway.client.get(f"{API}/users", headers=admin.headers)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
    assert [u["role"] for u in page["items"]] == ["admin", "engineer", "viewer"]
    assert {u["account_id"] for u in page["items"]} == {admin.account_id}
    assert outsider.id not in {u["id"] for u in page["items"]}
    assert engineer.email == "eng.one@example.com" and engineer.role == "engineer"

    second = (await gateway.client.get(f"{API}/users?limit=1&offset=1", headers=admin.headers)).json()
    assert second["total"] == 3 and [u["role"] for u in second["items"]] == ["engineer"]
    assert (await gateway.client.get(f"{API}/users?limit=201", headers=admin.headers)).status_code == 422


async def test_creating_a_user_with_a_taken_email_gives_409(gateway: Gateway) -> None:
    admin, _ = await gateway.register(email="dup-owner@example.com")
    r = await gateway.client.post(f"{API}/users", headers=admin.headers, json={
        "email": "DUP-owner@example.com", "password": PASSWORD, "full_name": "X", "role": "viewer",
    })
    assert r.status_code == 409


async def test_a_role_change_applies_at_once_and_a_refresh_picks_it_up(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    user = await gateway.add_user(admin, "viewer")
    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"role": "engineer"})
    assert r.status_code == 200 and r.json()["role"] == "engineer"
    # The old token says "viewer": refused, so that a demotion cannot be outlived by a token.
    assert (await gateway.client.get(f"{API}/auth/me", headers=user.headers)).status_code == 401
    pair = (await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh})).json()
    me = await gateway.client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.json()["role"] == "engineer"


async def test_a_deactivated_user_is_locked_out_at_once(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    user = await gateway.add_user(admin, "engineer")
    assert (await gateway.client.get(f"{API}/auth/me", headers=user.headers)).status_code == 200

    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False

    assert (await gateway.client.get(f"{API}/auth/me", headers=user.headers)).status_code == 401
    assert (await gateway.client.get(f"{API}/trees", headers=user.headers)).status_code == 401
    refresh = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh})
    assert refresh.status_code == 401
    login = await gateway.client.post(f"{API}/auth/login/json", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 401
    assert login.json() == {"detail": "incorrect email or password", "code": "bad_credentials"}

    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": True})
    assert r.status_code == 200
    assert (await gateway.client.post(f"{API}/auth/login/json", json={"email": user.email, "password": PASSWORD})
            ).status_code == 200


async def test_deactivating_a_user_denies_the_access_token_of_every_live_session(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    user = await gateway.add_user(admin, "engineer")
    second = await gateway.client.post(f"{API}/auth/login/json", json={"email": user.email, "password": PASSWORD})
    assert second.status_code == 200
    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert r.status_code == 200
    # Two logins, two refresh families: both access tokens are on the deny list, each once.
    denied = "SELECT count(*) FROM revoked_access_tokens WHERE user_id = CAST(:u AS uuid)"
    assert await gateway.scalar(denied, u=str(user.id)) == 2
    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert r.status_code == 200
    assert await gateway.scalar(denied, u=str(user.id)) == 2


@pytest.mark.parametrize("change", [{"role": "engineer"}, {"role": "viewer"}, {"is_active": False}])
async def test_the_last_active_admin_cannot_demote_or_deactivate_themselves(gateway: Gateway, change: dict) -> None:
    admin, _ = await gateway.register()
    r = await gateway.client.patch(f"{API}/users/{admin.id}", headers=admin.headers, json=change)
    assert r.status_code == 409
    me = await gateway.client.get(f"{API}/auth/me", headers=admin.headers)
    assert me.status_code == 200 and me.json()["role"] == "admin"


async def test_an_admin_may_step_down_while_another_active_admin_remains(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    second = await gateway.add_user(admin, "admin")
    r = await gateway.client.patch(f"{API}/users/{admin.id}", headers=admin.headers, json={"role": "engineer"})
    assert r.status_code == 200 and r.json()["role"] == "engineer"
    # Now the other one is the last active admin.
    r = await gateway.client.patch(f"{API}/users/{second.id}", headers=second.headers, json={"is_active": False})
    assert r.status_code == 409


async def test_a_deactivated_admin_does_not_count_as_the_remaining_admin(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    second = await gateway.add_user(admin, "admin")
    assert (await gateway.client.patch(f"{API}/users/{second.id}", headers=admin.headers,
                                       json={"is_active": False})).status_code == 200
    r = await gateway.client.patch(f"{API}/users/{admin.id}", headers=admin.headers, json={"role": "viewer"})
    assert r.status_code == 409


async def test_users_of_another_account_are_not_found(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    other_admin, _ = await gateway.register()
    other_user = await gateway.add_user(other_admin, "engineer")
    for target in (other_user.id, other_admin.id, str(uuid.uuid4())):
        r = await gateway.client.patch(f"{API}/users/{target}", headers=admin.headers, json={"is_active": False})
        assert r.status_code == 404
    assert (await gateway.client.get(f"{API}/auth/me", headers=other_user.headers)).status_code == 200


@pytest.mark.parametrize("body", [{"role": "owner"}, {"is_active": "maybe"}, {"email": "new@example.com"},
                                  {"password": "new password 123"}])
async def test_patching_a_user_refuses_unknown_values_and_fields(gateway: Gateway, body: dict) -> None:
    admin, _ = await gateway.register()
    user = await gateway.add_user(admin, "viewer")
    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json=body)
    assert r.status_code == 422


async def test_an_unreachable_identity_database_gives_503_not_500(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    admin, _ = await gateway.register()
    gateway.running.app.state.identity.principals.clear()

    async def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(UserRepository, "principal_state_any_account", down)
    r = await gateway.client.get(f"{API}/auth/me", headers=admin.headers)
    assert r.status_code == 503
    assert r.json() == {"detail": "identity store unavailable; try again shortly", "code": "service_unavailable"}
