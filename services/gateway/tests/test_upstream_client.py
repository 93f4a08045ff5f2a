"""The gateway's HTTP client to the services, against scripted servers on real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from gateway import upstream
from gateway.proxy import traceparent_of
from gateway.upstream import BadResponse, ConnectFailed, UpstreamPool
from rf_testsupport import free_port


class Scripted:
    """A TCP server answering each request with what the test's `script(reader, writer, n)` writes."""

    def __init__(self, script: Callable[..., object]) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                if await self.script(reader, writer, len(self.requests)) == "close":  # type: ignore[misc]
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()


@asynccontextmanager
async def scripted(script: Callable[..., object]) -> AsyncIterator[tuple[Scripted, UpstreamPool]]:
    server = Scripted(script)
    listener = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    pool = UpstreamPool("127.0.0.1", port, max_connections=4, connect_timeout_s=1)
    try:
        yield server, pool
    finally:
        pool.close()
        listener.close()
        await listener.wait_closed()


async def _ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    body = f'{{"n": {n}}}'.encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    writer.write(head + body)
    await writer.drain()


async def test_connections_are_kept_alive_and_reused() -> None:
    async with scripted(_ok) as (server, pool):
        answers = [await pool.request(b"GET", b"/x", [], None) for _ in range(5)]
    assert [a.body for a in answers] == [b'{"n": %d}' % i for i in range(1, 6)]
    assert answers[0].status == 200 and (b"content-type", b"application/json") in answers[0].headers
    assert server.connections == 1


async def test_the_request_is_written_as_given() -> None:
    async with scripted(_ok) as (server, pool):
        await pool.request(b"POST", b"/a/b?c=1&c=%20", [(b"authorization", b"Bearer t"), (b"x-request-id", b"r1")],
                           b'{"k": 1}')
    lines = server.requests[0].split(b"\r\n")
    assert lines[0] == b"POST /a/b?c=1&c=%20 HTTP/1.1"
    assert b"authorization: Bearer t" in lines and b"x-request-id: r1" in lines and b"content-length: 8" in lines
    assert server.requests[0].endswith(b'\r\n\r\n{"k": 1}')


@pytest.mark.parametrize(("method", "target", "headers"), [
    (b"GET", b"/a b", []),
    (b"GET", b"/a\r\nx-evil: 1", []),
    (b"GET", b"/a\x7f", []),
    (b"GET", b"/a\x00", []),
    (b"GET /x HTTP/1.1\r\n", b"/a", []),
    (b"GET", b"/a", [(b"x-request-id", b"r\r\nx-evil: 1")]),
    (b"GET", b"/a", [(b"authorization", b"Bearer t\n")]),
    (b"GET", b"/a", [(b"accept", b"a\x00b")]),
])
async def test_a_request_that_could_smuggle_another_is_refused_before_anything_is_sent(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    async with scripted(_ok) as (server, pool):
        with pytest.raises(ValueError, match="not forwardable"):
            await pool.request(method, target, headers, None)
        assert (await pool.request(b"GET", b"/ok?q=%20", [(b"accept", b"text/plain; q=0.5")], None)).status == 200
    assert len(server.requests) == 1 and server.requests[0].startswith(b"GET /ok?q=%20 HTTP/1.1\r\n")


async def test_a_chunked_answer_is_reassembled() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await writer.drain()

    async with scripted(chunked) as (server, pool):
        first = await pool.request(b"GET", b"/", [], None)
        second = await pool.request(b"GET", b"/", [], None)
    assert first.status == 201 and first.body == second.body == b"hello world"
    assert server.connections == 1


async def test_a_connection_the_service_closed_while_idle_is_not_used_again() -> None:
    async def ok_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> str:
        await _ok(reader, writer, n)
        return "close"  # like a service whose keep-alive timeout just ran out

    async with scripted(ok_then_close) as (server, pool):
        await pool.request(b"GET", b"/", [], None)
        # Until the service's close reaches the pool (a 10 s deadline).
        deadline = time.monotonic() + 10
        while not all(connection.closed for connection in pool._idle):
            assert time.monotonic() < deadline, "the pool never saw the service close the connection"
            await asyncio.sleep(0.01)
        answer = await pool.request(b"PUT", b"/", [], b"{}")
    assert answer.status == 200 and server.connections == 2


async def _closes_on_the_second_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> str:
    # The race a keep-alive timeout can cause: the request is read, the connection closes without an answer.
    if n == 2:
        return "close"
    await _ok(reader, writer, n)
    return ""


async def test_a_get_is_sent_again_when_a_kept_alive_connection_closes_without_answering() -> None:
    async with scripted(_closes_on_the_second_request) as (server, pool):
        await pool.request(b"GET", b"/", [], None)
        answer = await pool.request(b"GET", b"/", [], None)
    assert answer.body == b'{"n": 3}' and server.connections == 2


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE"])
async def test_a_request_that_changes_state_is_never_sent_twice(method: bytes) -> None:
    async with scripted(_closes_on_the_second_request) as (server, pool):
        await pool.request(b"GET", b"/", [], None)
        with pytest.raises(BadResponse):
            await pool.request(method, b"/", [], b"{}")
    assert len(server.requests) == 2


async def test_a_truncated_answer_is_a_bad_response() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> str:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly a part")
        await writer.drain()
        return "close"

    async with scripted(truncated) as (_, pool):
        with pytest.raises(BadResponse):
            await pool.request(b"POST", b"/", [], b"{}")


async def test_garbage_is_a_bad_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    async with scripted(garbage) as (_, pool):
        with pytest.raises(BadResponse):
            await pool.request(b"GET", b"/", [], None)


async def test_an_answer_larger_than_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "MAX_RESPONSE_BYTES", 1000)

    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000)
        await writer.drain()

    async with scripted(huge) as (_, pool):
        with pytest.raises(BadResponse):
            await pool.request(b"GET", b"/", [], None)


async def test_a_refused_connection_is_connect_failed() -> None:
    pool = UpstreamPool("127.0.0.1", free_port(), max_connections=2, connect_timeout_s=1)
    with pytest.raises(ConnectFailed):
        await pool.request(b"GET", b"/", [], None)


@pytest.mark.parametrize(("target", "headers"), [
    (b"/a b", []), (b"/a\r\nHost: evil", []), (b"/", [(b"x-a", b"1\r\nx-b: 2")]), (b"/", [(b"x-a", b"\x00")]),
])
async def test_nothing_that_could_smuggle_a_second_request_is_sent(target: bytes, headers: list) -> None:
    async with scripted(_ok) as (server, pool):
        with pytest.raises(ValueError):
            await pool.request(b"GET", target, headers, None)
    assert server.requests == []


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            await asyncio.sleep(0.5)
        await _ok(reader, writer, n)

    async with scripted(slow) as (server, pool):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.request(b"GET", b"/", [], None)
        answer = await pool.request(b"GET", b"/", [], None)
    # The second request got its own answer on a new connection, never the late answer to the first ({"n": 1}).
    assert answer.body == b'{"n": 2}' and server.connections == 2


@pytest.mark.parametrize(("given", "kept"), [
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
    ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00", True),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
    ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
    ("garbage", False), (None, False), ("", False),
])
def test_a_valid_traceparent_is_kept_and_anything_else_starts_a_trace(given: str | None, kept: bool) -> None:
    result = traceparent_of(given)
    assert (result == (given or "").lower()) is kept
    assert traceparent_of(result) == result
