"""The token-denial follower: pages through the feed, forgets what expired, rides out a gateway outage."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Query

from rf_testsupport import Served
from rfkit import denials as denials_module
from rfkit.denials import TokenDenials


def _feed_app(rows: list[dict[str, Any]], state: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/internal/v1/token-denials")
    async def feed(after: int = 0, limit: int = Query(1000)) -> dict[str, Any]:
        if state["down"]:
            state["failed"] = state.get("failed", 0) + 1
            raise RuntimeError("down")  # a 500, as a failing gateway answers
        state["requests"] += 1
        return {"denials": [row for row in rows if row["seq"] > after][:limit]}

    return app


def _row(seq: int, reason: str = "revoked", ttl_s: float = 600) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    return {"seq": seq, "jti": f"jti-{seq}", "expires_at": expires.isoformat(), "reason": reason}


async def _until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_pages_through_the_feed_and_follows_new_denials() -> None:
    rows = [_row(seq) for seq in range(1, 8)]
    state = {"down": False, "requests": 0}
    async with Served(_feed_app(rows, state), lifespan="off") as served:
        denials = TokenDenials(served.url, poll_interval_s=0.05, page=3)
        await denials.start()
        try:
            await asyncio.wait_for(denials.synced.wait(), 10)
            assert [denials.reason(f"jti-{seq}") for seq in range(1, 8)] == ["revoked"] * 7
            assert denials.reason("jti-unknown") is None
            rows.append(_row(8, "role_changed"))
            await _until(lambda: denials.reason("jti-8") == "role_changed")
        finally:
            await denials.stop()


async def test_a_denial_is_forgotten_when_its_token_would_have_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    # The follower's wall clock, moved by the test: how long the machine takes to get here changes nothing.
    clock = {"now": time.time()}
    monkeypatch.setattr(denials_module, "time", SimpleNamespace(time=lambda: clock["now"], monotonic=time.monotonic))
    rows = [_row(1, ttl_s=600)]
    async with Served(_feed_app(rows, {"down": False, "requests": 0}), lifespan="off") as served:
        denials = TokenDenials(served.url, poll_interval_s=0.05)
        await denials.start()
        try:
            await asyncio.wait_for(denials.synced.wait(), 10)
            assert denials.reason("jti-1") == "revoked"
            clock["now"] += 601
            await _until(lambda: denials.reason("jti-1") is None)
        finally:
            await denials.stop()


async def test_a_gateway_outage_keeps_what_is_known_and_is_logged_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = {"down": False, "requests": 0}
    rows = [_row(1)]
    async with Served(_feed_app(rows, state), lifespan="off") as served:
        denials = TokenDenials(served.url, poll_interval_s=0.02)
        await denials.start()
        try:
            await asyncio.wait_for(denials.synced.wait(), 10)
            with caplog.at_level(logging.WARNING, logger="rfkit.denials"):
                state["down"] = True
                await _until(lambda: state.get("failed", 0) >= 5)  # many polls fail meanwhile
                assert denials.reason("jti-1") == "revoked"
                rows.append(_row(2))
                state["down"] = False
                await _until(lambda: denials.reason("jti-2") == "revoked")
            # Only this follower's lines: services of other tests in this process may log their own.
            messages = [record.getMessage() for record in caplog.records
                        if record.name == "rfkit.denials" and served.url in record.getMessage()]
            assert len(messages) == 2, messages
            assert "unreachable" in messages[0]
            assert "reachable again" in messages[1]
        finally:
            await denials.stop()


def test_a_service_in_prod_refuses_to_start_without_the_gateway_url() -> None:
    from pydantic import ValidationError

    from rfkit.settings import DomainServiceSettings

    with pytest.raises(ValidationError, match="RF_GATEWAY_URL is required when RF_ENV=prod"):
        DomainServiceSettings(env="prod", jwt_public_key="a key")
    assert DomainServiceSettings(env="prod", jwt_public_key="a key", gateway_url="http://gateway:8000").gateway_url
