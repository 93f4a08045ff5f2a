"""Failed logins are throttled per email and per client address (429 + Retry-After), the same for every replica."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from gateway.testing import API, PASSWORD, Gateway, start_gateway


def _address() -> str:
    """A client address of this test alone (the per-address counter must not leak between tests)."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/login/json", json={"email": email, "password": password})


async def test_the_sixth_attempt_after_five_failures_on_an_email_gets_429_with_retry_after(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    async with gateway.client_from(_address()) as client:
        for _ in range(5):
            assert (await _login(client, admin.email, "wrong password")).status_code == 401
        # Even the right password is refused now: the lock is what stops the guessing.
        r = await _login(client, admin.email, PASSWORD)
    assert r.status_code == 429
    assert r.json()["detail"] == "too many failed login attempts; try again later" and r.json()["code"]
    assert 0 < int(r.headers["retry-after"]) <= 900
    # The email is locked from everywhere, the form login included.
    async with gateway.client_from(_address()) as elsewhere:
        assert (await _login(elsewhere, admin.email, PASSWORD)).status_code == 429
        form = await elsewhere.post(f"{API}/auth/login", data={"username": admin.email, "password": PASSWORD})
        assert form.status_code == 429 and "retry-after" in form.headers


async def test_an_unknown_email_is_throttled_exactly_like_a_known_one(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    unknown = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
    answers: dict[str, list[int]] = {}
    async with gateway.client_from(_address()) as client:
        for email in (admin.email, unknown):
            answers[email] = [(await _login(client, email, "wrong password")).status_code for _ in range(7)]
    assert answers[admin.email] == answers[unknown] == [401] * 5 + [429] * 2


async def test_refused_attempts_do_not_extend_the_lock(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    async with gateway.client_from(_address()) as client:
        for _ in range(5):
            await _login(client, admin.email, "wrong password")
        for _ in range(5):
            assert (await _login(client, admin.email, "wrong password")).status_code == 429
    count = await gateway.scalar("SELECT count(*) FROM login_attempts WHERE scope = 'email' AND key = :k",
                                 k=admin.email)
    assert count == 5


async def test_a_successful_login_clears_the_emails_failures(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    async with gateway.client_from(_address()) as client:
        for _ in range(4):
            assert (await _login(client, admin.email, "wrong password")).status_code == 401
        assert (await _login(client, admin.email, PASSWORD)).status_code == 200
        for _ in range(4):
            assert (await _login(client, admin.email, "wrong password")).status_code == 401
        assert (await _login(client, admin.email, PASSWORD)).status_code == 200


async def test_concurrent_logins_of_one_user_all_succeed(gateway: Gateway) -> None:
    """Each success clears the email's attempts and purges old rows: concurrent ones must not deadlock (500)."""
    admin, _ = await gateway.register()
    for _ in range(3):
        clients = [gateway.client_from(_address()) for _ in range(4)]
        try:
            answers = await asyncio.gather(*(_login(client, admin.email, PASSWORD) for client in clients))
        finally:
            for client in clients:
                await client.aclose()
        assert [r.status_code for r in answers] == [200] * len(clients), [r.text for r in answers]


async def test_twenty_failures_from_one_address_lock_that_address_only(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    address = _address()
    async with gateway.client_from(address) as client:
        for i in range(20):  # spread over many emails: no single email reaches its own limit
            assert (await _login(client, f"spray-{i}@example.com", "guess")).status_code == 401
        r = await _login(client, admin.email, PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    async with gateway.client_from(_address()) as other:
        assert (await _login(other, admin.email, PASSWORD)).status_code == 200


async def test_failures_counted_by_one_replica_lock_the_email_at_another(gateway: Gateway) -> None:
    admin, _ = await gateway.register()
    replicas = start_gateway(gateway.settings.kafka_bootstrap, gateway.settings.database_url,
                             jwt_private_key=gateway.private_pem)
    other = await replicas.__anext__()
    try:
        async with gateway.client_from(_address()) as here, other.client_from(_address()) as there:
            for client in (here, there, here, there, here):
                assert (await _login(client, admin.email, "wrong password")).status_code == 401
            assert (await _login(there, admin.email, PASSWORD)).status_code == 429
            assert (await _login(here, admin.email, PASSWORD)).status_code == 429
    finally:
        await replicas.aclose()


async def test_registrations_are_throttled_per_client_address(gateway: Gateway) -> None:
    replicas = start_gateway(gateway.settings.kafka_bootstrap, gateway.settings.database_url,
                             jwt_private_key=gateway.private_pem, register_max_per_address=3)
    strict = await replicas.__anext__()
    try:
        def body() -> dict[str, str]:
            return {"email": f"r-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "full_name": "R",
                    "account_name": "R"}

        async with strict.client_from(_address()) as client, strict.client_from(_address()) as other:
            for _ in range(3):
                assert (await client.post(f"{API}/auth/register", json=body())).status_code == 201
            r = await client.post(f"{API}/auth/register", json=body())
            assert r.status_code == 429
            assert r.json()["detail"] == "too many registrations from this address; try again later"
            assert 0 < int(r.headers["retry-after"]) <= 3600
            assert (await other.post(f"{API}/auth/register", json=body())).status_code == 201
    finally:
        await replicas.aclose()
