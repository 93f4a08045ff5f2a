"""Apps in tests: an ASGI app with its lifespan and a client bound to it, or served by uvicorn on a real socket."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol, TypeVar

import httpx
import uvicorn
from asgi_lifespan import LifespanManager


class Startable(Protocol):
    def start(self) -> object: ...
    def stop(self) -> object: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def running(thing: S) -> Iterator[S]:
    """`thing` started (a broker, a stack of processes), and stopped on the way out whatever happened inside."""
    thing.start()
    try:
        yield thing
    finally:
        thing.stop()


class RunningApp:
    """An ASGI app with its lifespan running (real database, real Kafka) and an httpx client bound to it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._manager: Any = None
        self.client: Any = None

    async def __aenter__(self) -> RunningApp:
        self._manager = LifespanManager(self.app, startup_timeout=60, shutdown_timeout=30)
        await self._manager.__aenter__()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._manager.app), base_url="http://testserver"
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.aclose()
        await self._manager.__aexit__(*exc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port, for Served (bind first when peers must know the URL early)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Served:
    """An ASGI app served by uvicorn on a free loopback port, in a task of the current event loop.

    A real HTTP server (with the app's lifespan), so that what travels between processes in production
    (headers, bodies, refused connections, timeouts) travels over real sockets in tests too.
    """

    def __init__(
        self, app: Any, *, lifespan: Literal["auto", "on", "off"] = "on", sock: socket.socket | None = None
    ) -> None:
        self.app = app
        self.lifespan = lifespan
        self.url = ""
        self._sock = sock
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        sock = self._sock or loopback_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # proxy_headers=False as the servers run (--no-proxy-headers): uvicorn's default believes X-Forwarded-For
        # from 127.0.0.1, which in tests is every peer; the gateway's RF_TRUSTED_PROXIES alone decides.
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan=self.lifespan, access_log=False, proxy_headers=False
        )
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 90
        while not server.started:
            if self._task.done():  # startup failed: surface its error
                await self._task
                raise RuntimeError(f"{self.app!r} did not start")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start within 90s")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
