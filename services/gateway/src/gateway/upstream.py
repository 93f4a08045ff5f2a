"""A small HTTP/1.1 client for the gateway's hop to the services: keep-alive pool, httptools parser, no frills.

Why not httpx/httpcore: under concurrency their pool checks every connection (a poll(2) and several attribute
lookups each) for every request it places, which measured at about a third of the gateway's CPU per
forwarded request. The hop needs little: plain HTTP to a few known services, one request per connection at a
time, bodies in memory, no redirects, cookies, proxies or decompression. The response is parsed by httptools
(llhttp, the parser uvicorn uses for requests), so framing (Content-Length, chunked) is handled by a proven
parser, not here.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import httptools

# A request goes out only on a connection the service has not closed or announced it will close. Idle
# connections are dropped before the service would time them out (uvicorn's keep-alive timeout is 5 s); one
# that answered `Connection: close` or a 5xx, or whose end of file has arrived, is never reused. What remains
# is the race HTTP/1.1 cannot close (RFC 9112 section 9.3.1: a service closing an idle connection just as a
# request is sent on it), for which only safe methods are retried.
IDLE_EXPIRY_S = 4.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Only safe methods are ever sent twice: a PUT here records a step or a tree version, so even it must not be
# repeated on the chance that the service did process it before its connection broke.
_SAFE = frozenset({b"GET", b"HEAD", b"OPTIONS"})
# What must not reach the wire inside a request target (controls, space, DEL) or a header value (CR, LF, NUL).
_NOT_IN_TARGET = re.compile(rb"[\x00-\x20\x7f]")
_NOT_IN_VALUE = re.compile(rb"[\r\n\x00]")


class UpstreamError(Exception):
    """The service could not be reached or gave no valid answer."""


class ConnectFailed(UpstreamError):
    """No connection could be opened (refused, unreachable, or connect timeout): the service is down."""


class BadResponse(UpstreamError):
    """The connection broke, or the answer was not valid HTTP."""

    # Whether any byte of the answer had arrived (if none, the service may never have seen the request).
    answer_started = True


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class _Pending:
    future: asyncio.Future[Answer]
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    received: bool = False  # any byte of the answer has arrived


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._pending: _Pending | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:  # unsolicited bytes: the connection cannot be trusted any more
            self.close()
            return
        pending.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"invalid HTTP answer: {exc}"))

    def eof_received(self) -> bool | None:
        # The service closed its side: nothing may be sent on this connection any more (the transport closes
        # itself right after; marked now so that no request is placed on it in between).
        self.closed = True
        self.reusable = False
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(BadResponse(f"connection closed before the answer was complete: {exc!r}"))

    # -- httptools callbacks (after a failure within one feed_data call, the rest of its callbacks are ignored)
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._pending is not None:
            self._pending.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._pending is not None:
            self._pending.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        pending = self._pending
        if pending is None:
            return
        pending.size += len(body)
        if pending.size > MAX_RESPONSE_BYTES:
            self._fail(BadResponse("answer larger than the gateway accepts"))
            return
        pending.chunks.append(body)

    def on_message_complete(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending.future.done():
            return
        # Kept only when the service means to keep it: not after `Connection: close` (or HTTP/1.0), and not
        # after a 5xx, since a server that failed may close the connection without saying so (uvicorn does,
        # after an unhandled error) and the next request placed on it would fail for no fault of its own.
        self.reusable = self._parser.should_keep_alive() and pending.status < 500
        pending.future.set_result(Answer(pending.status, pending.headers, b"".join(pending.chunks)))

    # -- use
    async def exchange(self, request: bytes) -> Answer:
        """Send one request and wait for its answer."""
        assert self.transport is not None and self._pending is None
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending = pending
        self.reusable = False
        self.transport.write(request)
        try:
            return await pending.future
        except BadResponse as exc:
            exc.answer_started = pending.received
            raise

    def _fail(self, exc: UpstreamError) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.future.done():
            pending.future.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class StreamedAnswer:
    """An answer whose body is read as it arrives (Server-Sent Events): at most `high_water` bytes wait here.

    Past that the connection stops reading from the socket, so a client slower than the service slows the service
    down (TCP flow control) instead of growing this buffer. Always `close()` it: the connection is the stream's
    own and is never reused.
    """

    def __init__(self, connection: _StreamConnection, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._connection = connection
        self.status = status
        self.headers = headers

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body as it came off the socket, or None at its end."""
        return await self._connection.next_chunk()

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self.next_chunk()) is not None:
            yield chunk

    async def read(self, limit: int = MAX_RESPONSE_BYTES) -> bytes:
        """The whole body (an error answer); BadResponse beyond `limit` bytes."""
        parts, size = [], 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise BadResponse("answer larger than the gateway accepts")
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._connection.close()


class _StreamConnection(asyncio.Protocol):
    """One connection carrying one streamed answer, read with back-pressure."""

    def __init__(self, high_water: int) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._high_water = high_water
        self.head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._done = False
        self._error: BadResponse | None = None
        self._readable = asyncio.Event()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"invalid HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done:
            self._fail(BadResponse(f"connection closed before the answer was complete: {exc!r}"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.head.done():
            self.head.set_result((self._parser.get_status_code(), self._headers))

    def on_body(self, body: bytes) -> None:
        self._chunks.append(bytes(body))
        self._buffered += len(body)
        self._readable.set()
        if self._buffered > self._high_water and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self._done = True
        self._readable.set()

    # -- use
    async def next_chunk(self) -> bytes | None:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= self._high_water // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def _fail(self, exc: BadResponse) -> None:
        if self._error is None and not self._done:
            self._error = exc
        if not self.head.done():
            self.head.set_exception(exc)
        self._readable.set()
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections to one service (host, port), at most `max_connections` at a time."""

    def __init__(
        self, host: str, port: int, *, tls: bool = False, max_connections: int, connect_timeout_s: float
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        self._host_header = f"{host}:{port}".encode()
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> Answer:
        """One exchange. Raises ConnectFailed or BadResponse (ValueError: not forwardable); the caller bounds the
        total time."""
        request = self._encode(method, target, headers, body)
        async with self._slots:
            connection, reused = self._take_idle(), True
            if connection is None:
                connection, reused = await self._connect(), False
            try:
                answer = await connection.exchange(request)
            except BadResponse as exc:
                connection.close()
                # A kept-alive connection the service had just closed: a safe request is sent once more on a new
                # connection.
                if reused and not exc.answer_started and method in _SAFE:
                    connection = await self._connect()
                    try:
                        answer = await connection.exchange(request)
                    except BaseException:
                        connection.close()
                        raise
                else:
                    raise
            except BaseException:  # cancelled (timeout): the answer may still arrive, so the connection is done
                connection.close()
                raise
            if connection.reusable and not connection.closed:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return answer

    async def stream(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], *, high_water: int = 64 * 1024
    ) -> StreamedAnswer:
        """Send a request on a connection of its own and return as soon as the answer's head has arrived; the body
        is read as it comes (StreamedAnswer). Not counted against `max_connections`: a stream holds its connection
        for as long as it is open, and pooled requests must not wait behind open streams. Raises as `request`."""
        request = self._encode(method, target, headers, None)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _StreamConnection(high_water), self.host, self.port, ssl=True if self.tls else None
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"{self.host}:{self.port}: {exc!r}") from exc
        try:
            assert connection.transport is not None
            connection.transport.write(request)
            status, answer_headers = await connection.head
        except BaseException:
            connection.close()
            raise
        return StreamedAnswer(connection, status, answer_headers)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle and (self._idle[0].closed or now - self._idle[0].idle_since >= IDLE_EXPIRY_S):
            self._idle.popleft().close()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely to be closing
            if not connection.closed and now - connection.idle_since < IDLE_EXPIRY_S:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=True if self.tls else None
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"{self.host}:{self.port}: {exc!r}") from exc
        return connection

    def _encode(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None) -> bytes:
        # Everything here came through the gateway's own HTTP parser already; checked again because a CR or LF
        # reaching this point would let one request smuggle another.
        if not method.isalpha() or _NOT_IN_TARGET.search(target):
            raise ValueError("request line not forwardable")
        lines = [method + b" " + target + b" HTTP/1.1", b"host: " + self._host_header]
        for name, value in headers:
            if _NOT_IN_VALUE.search(value):
                raise ValueError("header value not forwardable")
            lines.append(name + b": " + value)
        if body is not None:
            lines.append(b"content-length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
