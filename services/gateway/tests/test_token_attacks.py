"""Forged, altered, expired, misdirected and revoked tokens all get 401, at identity routes and forwarded ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
import pytest_asyncio

from rf_testsupport.gateway import API, Gateway, User
from rfkit.auth import generate_keypair, issue_access_token

# One identity route and one forwarded route: the forwarded one must be refused before any forwarding (the
# services are not running here, so a forwarded request would answer 503, not 401).
ROUTES = [("GET", f"{API}/auth/me"), ("GET", f"{API}/trees"), ("POST", f"{API}/handoffs/{uuid.uuid4()}/claim")]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(user: User, **over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "resolutionflow-gateway", "aud": "resolutionflow", "sub": user.id, "acc": user.account_id,
        "role": "admin", "typ": "access", "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 600,
    }
    claims.update(over)
    return claims


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin(gateway: Gateway) -> User:
    user, _ = await gateway.register()
    return user


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def viewer(gateway: Gateway, admin: User) -> User:
    return await gateway.add_user(admin, "viewer")


async def _assert_refused(gateway: Gateway, token: str) -> None:
    for method, path in ROUTES:
        r = await gateway.client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"
        assert "detail" in r.json()


async def test_the_genuine_token_is_accepted(gateway: Gateway, admin: User) -> None:
    assert (await gateway.client.get(f"{API}/auth/me", headers=admin.headers)).status_code == 200


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a.b.c"])
async def test_a_missing_or_malformed_authorization_header_gets_401(gateway: Gateway, header: str | None) -> None:
    for method, path in ROUTES:
        headers = {} if header is None else {"Authorization": header}
        r = await gateway.client.request(method, path, headers=headers)
        assert r.status_code == 401, (path, header, r.text)


async def test_alg_none_is_refused(gateway: Gateway, admin: User) -> None:
    for alg in ("none", "None", "NONE"):
        await _assert_refused(gateway, _unsigned({"alg": alg, "typ": "JWT"}, _claims(admin)) + ".")


async def test_hs256_signed_with_the_public_key_is_refused(gateway: Gateway, admin: User) -> None:
    # The classic key confusion: a verifier that let the token pick HMAC would accept the public key as secret.
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, _claims(admin))
    for secret in (gateway.public_pem.encode(), gateway.public_pem.strip().encode()):
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        await _assert_refused(gateway, f"{signing_input}.{_b64(signature)}")


async def test_a_tampered_payload_is_refused(gateway: Gateway, viewer: User) -> None:
    header, _, signature = viewer.access.split(".")
    payload = json.loads(base64.urlsafe_b64decode(viewer.access.split(".")[1] + "=="))
    payload["role"] = "admin"
    await _assert_refused(gateway, f"{header}.{_b64(json.dumps(payload).encode())}.{signature}")


async def test_a_flipped_signature_bit_is_refused(gateway: Gateway, admin: User) -> None:
    head, body, signature = admin.access.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    await _assert_refused(gateway, f"{head}.{body}.{_b64(bytes(raw))}")


async def test_a_token_signed_with_another_key_is_refused(gateway: Gateway, admin: User) -> None:
    other_private, _ = generate_keypair()
    token = issue_access_token(other_private, user_id=uuid.UUID(admin.id), account_id=uuid.UUID(admin.account_id),
                               role="admin", issuer="resolutionflow-gateway", audience="resolutionflow")
    await _assert_refused(gateway, token)


@pytest.mark.parametrize("over", [
    {"now": int(time.time()) - 3600},  # expired an hour ago (well past the leeway)
    {"audience": "some-other-api"},
    {"issuer": "someone-else"},
])
async def test_expired_or_misdirected_tokens_are_refused(gateway: Gateway, admin: User, over: dict) -> None:
    fields = {"issuer": "resolutionflow-gateway", "audience": "resolutionflow", **over}
    token = issue_access_token(gateway.private_pem, user_id=uuid.UUID(admin.id),
                               account_id=uuid.UUID(admin.account_id), role="admin", **fields)
    await _assert_refused(gateway, token)


@pytest.mark.parametrize("over", [
    {"typ": "refresh"}, {"typ": None}, {"role": "superuser"}, {"sub": "not-a-uuid"}, {"exp": None}, {"jti": None},
    {"nbf": int(time.time()) + 3600},
])
async def test_tokens_with_wrong_or_missing_claims_are_refused(gateway: Gateway, admin: User, over: dict) -> None:
    import jwt

    claims = {k: v for k, v in _claims(admin, **over).items() if v is not None}
    await _assert_refused(gateway, jwt.encode(claims, gateway.private_pem, algorithm="EdDSA"))


async def test_a_validly_signed_token_of_an_unknown_user_is_refused(gateway: Gateway, admin: User) -> None:
    token = issue_access_token(gateway.private_pem, user_id=uuid.uuid4(), account_id=uuid.UUID(admin.account_id),
                               role="admin", issuer="resolutionflow-gateway", audience="resolutionflow")
    await _assert_refused(gateway, token)


async def test_a_token_claiming_another_account_is_refused(gateway: Gateway, admin: User) -> None:
    token = issue_access_token(gateway.private_pem, user_id=uuid.UUID(admin.id), account_id=uuid.uuid4(),
                               role="admin", issuer="resolutionflow-gateway", audience="resolutionflow")
    await _assert_refused(gateway, token)


async def test_a_refresh_token_is_not_an_access_token(gateway: Gateway, admin: User) -> None:
    await _assert_refused(gateway, admin.refresh)


async def test_the_token_of_a_deactivated_user_is_refused(gateway: Gateway, admin: User) -> None:
    user = await gateway.add_user(admin, "engineer")
    r = await gateway.client.patch(f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": False})
    assert r.status_code == 200
    await _assert_refused(gateway, user.access)


async def test_a_logged_out_token_is_refused(gateway: Gateway, admin: User) -> None:
    session = await gateway.login(admin.email)
    assert (await gateway.client.post(f"{API}/auth/logout", headers=session.headers)).status_code == 204
    await _assert_refused(gateway, session.access)


async def test_a_revoked_token_is_refused_by_another_replica_once_its_cache_expires(
    gateway: Gateway, admin: User
) -> None:
    # A second gateway process on the same database: the denylist is shared, not per process.
    from rf_testsupport.gateway import start_gateway

    session = await gateway.login(admin.email)
    replicas = start_gateway(gateway.settings.kafka_bootstrap, gateway.settings.database_url,
                             jwt_private_key=gateway.private_pem, principal_cache_ttl_s=0)
    other = await replicas.__anext__()
    try:
        assert (await other.client.get(f"{API}/auth/me", headers=session.headers)).status_code == 200
        assert (await gateway.client.post(f"{API}/auth/logout", headers=session.headers)).status_code == 204
        assert (await other.client.get(f"{API}/auth/me", headers=session.headers)).status_code == 401
    finally:
        await replicas.aclose()
