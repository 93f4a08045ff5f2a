"""Token verification every service does: keys parsed once, accepted tokens remembered only until they expire."""

from __future__ import annotations

import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rfkit.auth import InvalidToken, RememberingVerifier, TokenVerifier, generate_keypair, issue_access_token

ISSUER, AUDIENCE = "resolutionflow-gateway", "resolutionflow"


def _token(private_pem: str, *, ttl_s: int = 900, now: int | None = None) -> str:
    return issue_access_token(
        private_pem, user_id=uuid.uuid4(), account_id=uuid.uuid4(), role="engineer",
        issuer=ISSUER, audience=AUDIENCE, ttl_s=ttl_s, now=now,
    )


def test_a_remembered_token_is_the_same_principal_and_an_altered_one_is_still_refused() -> None:
    private, public = generate_keypair()
    verifier = RememberingVerifier(TokenVerifier([public], issuer=ISSUER, audience=AUDIENCE))
    token = _token(private)
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # remembered, not verified again
    header, payload, signature = token.split(".")
    altered = ".".join([header, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])
    with pytest.raises(InvalidToken):
        verifier.verify(altered)


def test_a_remembered_token_is_checked_again_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = generate_keypair()
    inner = TokenVerifier([public], issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
    verifier = RememberingVerifier(inner)
    issued = int(time.time())
    token = _token(private, ttl_s=60, now=issued)
    assert verifier.verify(token).role == "engineer"
    calls: list[str] = []

    def expired(t: str) -> None:
        calls.append(t)
        raise InvalidToken("Signature has expired")

    monkeypatch.setattr(inner, "verify", expired)
    monkeypatch.setattr(time, "time", lambda: issued + 59.0)
    assert verifier.verify(token).role == "engineer"  # still valid: remembered
    assert calls == []
    monkeypatch.setattr(time, "time", lambda: issued + 60.0)  # at exp: no longer remembered
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)
    assert calls == [token]


def test_a_token_of_another_key_is_refused_even_when_the_cache_is_full() -> None:
    private, public = generate_keypair()
    stranger, _ = generate_keypair()
    verifier = RememberingVerifier(TokenVerifier([public], issuer=ISSUER, audience=AUDIENCE), max_entries=2)
    for _ in range(5):  # the cache is cleared when full, never grows past its bound
        verifier.verify(_token(private))
    assert len(verifier._accepted) <= 2
    with pytest.raises(InvalidToken):
        verifier.verify(_token(stranger))


def test_a_public_key_that_is_not_ed25519_is_refused_at_startup() -> None:
    rsa_public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        TokenVerifier([rsa_public], issuer=ISSUER, audience=AUDIENCE)
