"""The sessions address: required with RF_ENV=prod (never a silent 127.0.0.1), a loopback default otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from handoffs.settings import Settings


@pytest.fixture(autouse=True)
def _no_address_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RF_SESSIONS_URL", raising=False)


def test_the_sessions_address_is_a_declared_peer() -> None:
    # (gateway_url: the token-denial feed every service behind the gateway follows.)
    assert set(Settings.peer_url_fields()) == {"sessions_url", "gateway_url"}
    assert Settings.env_name("sessions_url") == "RF_SESSIONS_URL"


def test_prod_refuses_to_start_without_the_sessions_address() -> None:
    with pytest.raises(ValidationError, match="RF_SESSIONS_URL is required when RF_ENV=prod"):
        Settings(env="prod", jwt_public_key="a public key", gateway_url="http://gateway:8000")


def test_prod_reads_the_sessions_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_SESSIONS_URL", "http://sessions:8001")
    monkeypatch.setenv("RF_GATEWAY_URL", "http://gateway:8000")
    settings = Settings(env="prod", jwt_public_key="a public key")
    assert settings.sessions_url == "http://sessions:8001"


@pytest.mark.parametrize("env", ["local", "test"])
def test_local_and_test_default_to_loopback(env: str) -> None:
    assert Settings(env=env).sessions_url == "http://127.0.0.1:8001"
