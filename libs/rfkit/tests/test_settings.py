"""Peer addresses (peer_url): discoverable from the class, required with RF_ENV=prod, loopback defaults otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rfkit.settings import ServiceSettings, peer_url


class TwoPeers(ServiceSettings):
    billing_url: str = peer_url("http://127.0.0.1:9001")
    search_url: str = peer_url("http://127.0.0.1:9002")
    # Not a peer: a URL that is not another service of ours.
    docs_url: str = "https://example.org/docs"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RF_ENV", "RF_BILLING_URL", "RF_SEARCH_URL", "RF_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_the_peers_are_the_fields_declared_with_peer_url() -> None:
    assert TwoPeers.peer_url_fields() == ("billing_url", "search_url")
    assert ServiceSettings.peer_url_fields() == ()
    assert TwoPeers.env_name("billing_url") == "RF_BILLING_URL"


def test_prod_names_every_missing_peer_address() -> None:
    with pytest.raises(ValidationError, match="RF_BILLING_URL, RF_SEARCH_URL are required when RF_ENV=prod"):
        TwoPeers(env="prod", jwt_public_key="a public key")
    with pytest.raises(ValidationError, match="RF_SEARCH_URL is required when RF_ENV=prod"):
        TwoPeers(env="prod", jwt_public_key="a public key", billing_url="http://billing:9001")


def test_prod_accepts_addresses_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_ENV", "prod")
    monkeypatch.setenv("RF_JWT_PUBLIC_KEY", "a public key")
    monkeypatch.setenv("RF_BILLING_URL", "http://billing:9001")
    monkeypatch.setenv("RF_SEARCH_URL", "http://search:9002")
    settings = TwoPeers()
    assert (settings.billing_url, settings.search_url) == ("http://billing:9001", "http://search:9002")


def test_a_default_written_out_in_prod_still_counts_as_given() -> None:
    # Given explicitly (even if equal to the default), the operator chose it: no error.
    settings = TwoPeers(env="prod", jwt_public_key="k", billing_url="http://127.0.0.1:9001",
                        search_url="http://127.0.0.1:9002")
    assert settings.billing_url == "http://127.0.0.1:9001"


@pytest.mark.parametrize("value", ["", "sessions:8001", "ftp://sessions", "http://"])
def test_an_address_that_is_not_an_http_url_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="RF_SEARCH_URL must be an http"):
        TwoPeers(env="test", search_url=value)


@pytest.mark.parametrize("env", ["local", "test"])
def test_local_and_test_keep_loopback_defaults(env: str) -> None:
    settings = TwoPeers(env=env)
    assert (settings.billing_url, settings.search_url) == ("http://127.0.0.1:9001", "http://127.0.0.1:9002")
