"""Requests an adversary sends without logging in: each is a 4xx that says why, never a 5xx or an echo."""

from __future__ import annotations

import pytest

from rf_testsupport.gateway import API, PASSWORD, Gateway

JSON = {"content-type": "application/json"}
SECRET = "Sup3r-secret-pw"


@pytest.mark.parametrize("body", [
    b'{"email": "a@b.c", "password": NaN}',
    b'{"email": "a@b.c", "password": Infinity}',
    b'{"email": "a@b.c", "password": -Infinity}',
    b'{"email": "a@b.c", "password": 1e999}',
    b'{"email": "a@b.c", "password": [1e999]}',
    b'{"email": "a@b.c", "password": "\\ud800"}',
    b'{"email": "\\udfff@b.c", "password": "x"}',
    b'{"email": "a@b.c", "password": "a\\u0000"}',
    b'{"email": "a@b.c", "\\ud800": 1}',
    b'{"email": "a@b.c", "password": ' + b"[" * 100 + b"]" * 100 + b"}",
    b'{"email": "a@b.c", "password": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"email": "a@b.c", "password": 1' + b"0" * 5000 + b"}",
    b'{"email": "a@b.c", "password": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes: not UTF-8
    b'{"email": "a@b.c", "password": "x"',
])
async def test_a_hostile_login_body_is_a_422_in_the_usual_shape(gateway: Gateway, body: bytes) -> None:
    for path in ("/auth/login/json", "/auth/register", "/auth/refresh"):
        r = await gateway.client.post(f"{API}{path}", content=body, headers=JSON)
        assert r.status_code == 422, (path, r.status_code, r.text[:300])
        errors = r.json()["errors"]
        assert isinstance(errors, list) and errors and r.json()["code"] == "validation_failed"
        assert isinstance(r.json()["detail"], str)
        assert all({"loc", "msg", "type"} <= set(error) and "input" not in error for error in errors)


@pytest.mark.parametrize(("path", "body"), [
    ("/auth/register", {"email": "not-an-email", "password": SECRET, "full_name": "A", "account_name": "B"}),
    ("/auth/register", {"email": "a@example.com", "password": SECRET[:6], "full_name": "A", "account_name": "B"}),
    ("/auth/login/json", {"email": "a@example.com", "password": [SECRET]}),
    ("/auth/login/json", {"email": "a@example.com", "password": SECRET, "extra": SECRET}),
    ("/auth/refresh", {"refresh_token": {"t": SECRET}}),
])
async def test_a_422_never_echoes_what_was_sent(gateway: Gateway, path: str, body: dict) -> None:
    r = await gateway.client.post(f"{API}{path}", json=body)
    assert r.status_code == 422, r.text
    assert SECRET not in r.text and SECRET[:6] not in r.text
    assert all("input" not in error for error in r.json()["errors"])


async def test_the_login_form_refuses_nul_with_a_422(gateway: Gateway) -> None:
    r = await gateway.client.post(f"{API}/auth/login", data={"username": "a@b.c", "password": "a\x00b"})
    assert r.status_code == 422 and "a\x00b" not in r.text


async def test_a_trailing_slash_is_a_404_and_the_host_header_never_reaches_a_location(gateway: Gateway) -> None:
    user, _ = await gateway.register()
    for path in ("/trees/", "/auth/me/", "/users/", "/handoffs/stats/"):
        r = await gateway.client.get(f"{API}{path}", headers={**user.headers, "host": "evil.example.com"})
        assert r.status_code == 404, (path, r.status_code)
        assert "location" not in r.headers and "evil" not in r.text
    me = await gateway.client.get(f"{API}/auth/me", headers={**user.headers, "host": "evil.example.com"})
    assert me.status_code == 200


async def test_ordinary_json_still_passes(gateway: Gateway) -> None:
    # The strict reading changes nothing for valid JSON: escapes, surrogate pairs, large finite numbers.
    _, registered = await gateway.register(password=PASSWORD)
    local, domain = registered["user"]["email"].encode().split(b"@")
    body = b'{"email": "%s\\u0040%s", "password": "%s"}' % (local, domain, PASSWORD.encode())
    r = await gateway.client.post(f"{API}/auth/login/json", content=body, headers=JSON)
    assert r.status_code == 200, r.text
    r = await gateway.client.post(f"{API}/auth/login/json", headers=JSON,
                                  content=b'{"email": "nobody@example.com", "password": "\\ud83d\\udda8 \\u00e9"}')
    assert r.status_code == 401, r.text
    r = await gateway.client.post(f"{API}/auth/login/json", headers=JSON,
                                  content=b'{"email": "nobody@example.com", "password": "x", "n": -1.5e300}')
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "extra_forbidden"
