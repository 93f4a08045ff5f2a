"""The signing key: required in prod, ephemeral in local/test, Ed25519 only; public keys for rotation."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from gateway.main import create_app
from gateway.security import public_pem_of
from gateway.settings import Settings
from rfkit.auth import RememberingVerifier, generate_keypair, issue_access_token

# Where a deployment says the services are (required with RF_ENV=prod).
PEERS = {"sessions_url": "http://sessions:8001", "handoffs_url": "http://handoffs:8002",
         "analytics_url": "http://analytics:8003"}


def test_prod_refuses_to_start_without_a_private_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RF_JWT_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("RF_JWT_PRIVATE_KEY_FILE", raising=False)
    with pytest.raises(ValidationError, match="RF_JWT_PRIVATE_KEY"):
        Settings(env="prod")


def test_prod_accepts_a_key_file_and_derives_the_public_key(tmp_path: Path) -> None:
    private, public = generate_keypair()
    key_file = tmp_path / "key.pem"
    key_file.write_text(private)
    settings = Settings(env="prod", jwt_private_key_file=key_file, **PEERS)
    assert settings.signing_key_pem == private
    assert settings.public_key_pem() == public
    assert not settings.ephemeral_signing_key
    assert private not in repr(settings)


@pytest.mark.parametrize("missing", sorted(PEERS))
def test_prod_refuses_to_start_without_a_service_address(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.peer_url_fields():
        monkeypatch.delenv(Settings.env_name(name), raising=False)
    private, _ = generate_keypair()
    given = {k: v for k, v in PEERS.items() if k != missing}
    with pytest.raises(ValidationError, match=f"{missing.upper()} is required when RF_ENV=prod") as raised:
        Settings(env="prod", jwt_private_key=private, **given)
    assert str(raised.value).count("_URL") == 1, "only the missing address is named"


def test_prod_takes_the_service_addresses_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = generate_keypair()
    for name, url in PEERS.items():
        monkeypatch.setenv(f"RF_{name.upper()}", url)
    settings = Settings(env="prod", jwt_private_key=private)
    assert settings.upstreams() == {"sessions": PEERS["sessions_url"], "handoffs": PEERS["handoffs_url"],
                                    "analytics": PEERS["analytics_url"]}


def test_every_forwarding_target_is_a_declared_peer_address() -> None:
    # The deployment tests learn "the gateway calls X" from these declarations: each upstream must be one.
    settings = Settings(env="test")
    declared = {getattr(settings, name).rstrip("/") for name in Settings.peer_url_fields()}
    assert set(settings.upstreams().values()) == declared


def test_local_and_test_keep_loopback_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.peer_url_fields():
        monkeypatch.delenv(Settings.env_name(name), raising=False)
    for env in ("local", "test"):
        assert all(url.startswith("http://127.0.0.1:") for url in Settings(env=env).upstreams().values())


def test_local_without_a_key_signs_with_an_ephemeral_one() -> None:
    settings = Settings(env="test")
    assert settings.ephemeral_signing_key
    assert settings.public_key_pem() == public_pem_of(settings.signing_key_pem)


def test_a_key_that_is_not_ed25519_is_refused() -> None:
    ecdsa_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ValidationError, match="Ed25519"):
        Settings(env="test", jwt_private_key=ecdsa_key)
    with pytest.raises(ValidationError, match="PEM"):
        Settings(env="test", jwt_private_key="not a key")


def test_prod_refuses_weak_password_hashing() -> None:
    private, _ = generate_keypair()
    with pytest.raises(ValidationError, match="argon2"):
        Settings(env="prod", jwt_private_key=private, argon2_memory_kib=1024, **PEERS)


def test_tokens_of_the_previous_key_stay_valid_while_it_is_listed_as_a_public_key() -> None:
    old_private, old_public = generate_keypair()
    new_private, _ = generate_keypair()
    settings = Settings(env="test", jwt_private_key=new_private, jwt_public_key=old_public,
                        argon2_memory_kib=1024, argon2_time_cost=1, argon2_parallelism=1)
    app = create_app(settings)
    verifier: RememberingVerifier = app.state.verifier
    for key in (old_private, new_private):
        token = issue_access_token(key, user_id=uuid.uuid4(), account_id=uuid.uuid4(), role="viewer",
                                   issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        assert verifier.verify(token).role == "viewer"


def test_registration_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_REGISTRATION", "closed")
    assert Settings().registration == "closed"
    monkeypatch.setenv("RF_REGISTRATION", "sometimes")
    with pytest.raises(ValidationError, match="registration"):
        Settings()
