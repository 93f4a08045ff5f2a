"""Access tokens the gateway has denied (logout, revoked families, deactivated users, role changes), followed here.

Every service verifies tokens itself with the gateway's public key; a signature cannot say that a token was
revoked after it was signed. The gateway therefore keeps a feed of denied token ids
(`GET /internal/v1/token-denials?after=<seq>`), and each service follows it: one small request every
`RF_DENIALS_POLL_INTERVAL_S` (1 s by default) per process, never one per API request. A denial reaches every
service within about that interval. A denial is dropped from memory when the token would have expired anyway.

While the gateway cannot be reached, a service keeps what it already knows and goes on serving (a gateway
outage must not take every service down with it); the outage is logged once when it begins and once when it
ends, and `rf_token_denials_feed_up` says whether the feed is current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Literal

import httpx
from prometheus_client import Gauge

from rfkit.tasks import BackgroundTask

log = logging.getLogger(__name__)

DenialReason = Literal["revoked", "user_deactivated", "role_changed"]
# What a client is told, by the gateway and by every service alike.
DENIAL_DETAIL: dict[str, str] = {
    "revoked": "revoked",
    "user_deactivated": "user deactivated",
    "role_changed": "role changed, refresh the token",
    "api_key_revoked": "API key revoked",
}
FEED_PATH = "/internal/v1/token-denials"

FEED_UP = Gauge("rf_token_denials_feed_up", "1 when the last poll of the gateway's token-denial feed succeeded")
DENIED = Gauge("rf_token_denials_known", "Denied access tokens this process knows of (until they expire)")


class TokenDenials:
    """The denied token ids this process knows of, kept current by polling the gateway's feed."""

    def __init__(self, gateway_url: str, *, poll_interval_s: float = 1.0, page: int = 1000) -> None:
        self._url = gateway_url.rstrip("/") + FEED_PATH
        self._interval = poll_interval_s
        self._page = page
        self._denied: dict[str, tuple[float, str]] = {}  # jti -> (expires at, epoch seconds; reason)
        self._cursor = 0
        self._task = BackgroundTask()
        self._client: httpx.AsyncClient | None = None
        self._down_since: float | None = None
        self.synced = asyncio.Event()

    def reason(self, token_id: str) -> str | None:
        """Why the token is denied, or None when it is not (as far as the feed has told)."""
        entry = self._denied.get(token_id)
        if entry is None:
            return None
        if entry[0] <= time.time():
            del self._denied[token_id]
            return None
        return entry[1]

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0))
        self._task.start(self._follow(), name="token-denials")

    async def stop(self) -> None:
        await self._task.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def poll(self) -> None:
        """Read the feed to its end once (raises when the gateway cannot be read)."""
        assert self._client is not None
        while True:
            response = await self._client.get(self._url, params={"after": self._cursor, "limit": self._page})
            response.raise_for_status()
            body = response.json()
            for item in body["denials"]:
                expires = datetime.fromisoformat(item["expires_at"]).timestamp()
                self._denied[str(item["jti"])] = (expires, str(item["reason"]))
                self._cursor = max(self._cursor, int(item["seq"]))
            if len(body["denials"]) < self._page:
                break
        self._forget_expired()
        DENIED.set(len(self._denied))

    async def _follow(self) -> None:
        while True:
            try:
                await self.poll()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self._went_down(exc)
            else:
                self._came_back()
                self.synced.set()
            await asyncio.sleep(self._interval)

    def _went_down(self, exc: Exception) -> None:
        FEED_UP.set(0)
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("token-denial feed %s unreachable (%s: %s); serving with what is known, retrying every %.1fs",
                        self._url, type(exc).__name__, exc, self._interval)

    def _came_back(self) -> None:
        FEED_UP.set(1)
        if self._down_since is not None:
            lasted = time.monotonic() - self._down_since
            log.warning("token-denial feed %s reachable again after %.1fs", self._url, lasted)
            self._down_since = None

    def _forget_expired(self) -> None:
        now = time.time()
        for jti in [jti for jti, (expires, _) in self._denied.items() if expires <= now]:
            del self._denied[jti]
