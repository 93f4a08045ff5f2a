"""Streamed answers of the gateway's HTTP client: read as they arrive, with back-pressure, closed on demand."""

from __future__ import annotations

import asyncio

from gateway.upstream import UpstreamPool
from rf_testsupport import wait_until

PIECE = b"data: " + b"x" * 4090 + b"\n\n"  # 4 KiB per chunk
PIECES = 256  # 1 MiB in all: sixteen times the stream's buffer
# asyncio reads at most this much from a socket at once: the buffer can exceed its mark by one read.
SOCKET_READ = 256 * 1024


async def test_a_streamed_body_is_read_piece_by_piece_and_the_reading_pauses_while_the_reader_lags() -> None:
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(PIECES):
            writer.write(b"%x\r\n%s\r\n" % (len(PIECE), PIECE))
            await writer.drain()  # blocks once the client stops reading: its buffer is bounded
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client closes
        closed.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1], max_connections=1, connect_timeout_s=1)
    try:
        answer = await pool.stream(b"GET", b"/stream", [], high_water=64 * 1024)
        assert answer.status == 200 and (b"content-type", b"text/event-stream") in answer.headers
        connection = answer._connection

        async def paused() -> bool:
            return connection._paused

        await wait_until(paused)  # nothing read yet: the connection stopped taking bytes off the socket
        assert connection._buffered <= 64 * 1024 + SOCKET_READ
        body = b"".join([chunk async for chunk in answer.chunks()])
        assert body == PIECE * PIECES and not connection._paused
        answer.close()
        await asyncio.wait_for(closed.wait(), 20)  # the service sees the stream's connection closed
    finally:
        server.close()
        await server.wait_closed()


async def test_closing_a_stream_mid_way_closes_the_connection_to_the_service() -> None:
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # an open stream: ends only when the client goes
        closed.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1], max_connections=1, connect_timeout_s=1)
    try:
        answer = await pool.stream(b"GET", b"/stream", [])
        assert await answer.next_chunk() == b"hello"
        answer.close()
        await asyncio.wait_for(closed.wait(), 20)
    finally:
        server.close()
        await server.wait_closed()
