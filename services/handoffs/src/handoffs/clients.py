"""HTTP clients of other services: the synchronous check of a session against sessions, on behalf of the caller."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import httpx

from handoffs.domain import SessionsUnavailable
from handoffs.ports import SessionInfo, SessionLookup

log = logging.getLogger(__name__)


class SessionsClient:
    """One pooled HTTP client to the sessions service (RF_SESSIONS_URL), with a short timeout."""

    def __init__(self, base_url: str, *, timeout_s: float = 2.0, transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    def on_behalf_of(self, *, authorization: str, request_id: str | None) -> SessionLookup:
        """A lookup that forwards the caller's credentials, so the sessions service enforces tenancy itself."""

        async def lookup(session_id: UUID) -> SessionInfo | None:
            return await self.get(session_id, authorization=authorization, request_id=request_id)

        return lookup

    async def get(self, session_id: UUID, *, authorization: str, request_id: str | None) -> SessionInfo | None:
        """The session, None when the sessions service says 404; Unavailable (503) when it cannot answer."""
        headers = {"Authorization": authorization}
        if request_id:
            headers["X-Request-ID"] = request_id
        try:
            response = await self._http.get(f"/api/v1/sessions/{session_id}", headers=headers)
        except httpx.TimeoutException as exc:
            log.warning("sessions service timed out checking session %s: %r", session_id, exc)
            raise SessionsUnavailable(
                f"the sessions service did not answer within {self.timeout_s:g} s; the escalation was not "
                "recorded, try again"
            ) from exc
        except httpx.RequestError as exc:  # refused, reset, DNS, protocol errors: nothing usable came back
            log.warning("sessions service unreachable checking session %s: %r", session_id, exc)
            raise SessionsUnavailable(
                "the sessions service is unreachable, so the session cannot be checked; the escalation was "
                "not recorded, try again"
            ) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.warning("sessions service answered %d checking session %s", response.status_code, session_id)
            raise SessionsUnavailable(
                f"the sessions service could not check the session (HTTP {response.status_code}); "
                "the escalation was not recorded, try again"
            )
        return _parse(response)


def _parse(response: httpx.Response) -> SessionInfo:
    try:
        body: Any = response.json()
        return SessionInfo(id=UUID(body["id"]), account_id=UUID(body["account_id"]), status=str(body["status"]))
    except (ValueError, KeyError, TypeError) as exc:
        log.error("sessions service sent an unexpected session document: %r", exc)
        raise SessionsUnavailable("the sessions service sent an unexpected answer; try again") from exc
