"""Live queue fan-out: from a claim's 200 at the gateway to its event on every one of 500 open streams.

The SSE half of bench.liveops (`uv run python -m bench.liveops`), runnable alone as
`uv run python -m bench._liveops_sse [--streams 500] [--samples 20] [--gateway-url URL]`. Without --gateway-url
the four services run as their own uvicorn processes (fresh databases) on infrastructure from rf_devstack, and
the gateway's resident memory is read before and after the streams open (KiB per open stream); with it, a running
stack is used and memory is not measured. The streams are plain sockets reading `GET /api/v1/handoffs/queue/stream`
through the gateway as one account's admin. Each sample escalates a session, then claims the handoff: the clock
starts when the claim's 200 arrives and stops, per stream, when that stream has the event showing it claimed.
The path measured: the commit's trigger and NOTIFY -> the handoffs replica's listener -> one read and render of
the change -> 500 streams -> the gateway's relay -> the client socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench._support import TREE, four_services, new_account

COMMAND = "uv run python -m bench._liveops_sse"
STREAM_PATH = "/api/v1/handoffs/queue/stream"


class SseStream:
    """One open stream on a raw socket: keeps the events it has read, tells when one matches what a sample waits."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buffer = b""
        self.waiting: tuple[bytes, asyncio.Future[float]] | None = None
        self.opened = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def open(self, gateway_url: str, authorization: str) -> None:
        parts = urlsplit(gateway_url)
        self.reader, self.writer = await asyncio.open_connection(parts.hostname, parts.port)
        self.writer.write(
            f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {authorization}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await self.writer.drain()
        self.task = asyncio.create_task(self._read())

    def expect(self, marker: bytes) -> asyncio.Future[float]:
        """A future set to the arrival time (perf_counter) of the first event holding `marker`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting = (marker, future)
        self._match()
        return future

    async def _read(self) -> None:
        assert self.reader is not None
        while data := await self.reader.read(65536):
            self.buffer += data
            if not self.opened.is_set() and b"retry:" in self.buffer:
                self.opened.set()
            self._match()

    def _match(self) -> None:
        # Complete events only (an event ends with a blank line); the chunk-size lines in between do not matter.
        *events, self.buffer = self.buffer.split(b"\n\n")
        if self.waiting is None:
            return
        marker, future = self.waiting
        if not future.done() and any(marker in event and b'"status":"claimed"' in event for event in events):
            future.set_result(time.perf_counter())
            self.waiting = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def sse_sample(api: httpx.AsyncClient, headers: dict[str, str], tree_id: str,
                     streams: list[SseStream]) -> list[float]:
    """Milliseconds from the claim's 200 to its event on each stream."""
    session = (await api.post("/sessions", json={"tree_id": tree_id}, headers=headers)).raise_for_status().json()
    handoff = (await api.post("/handoffs", json={"session_id": session["id"], "reason": "bench", "priority": "high"},
                              headers=headers)).raise_for_status().json()
    marker = f'"id":"{handoff["id"]}"'.encode()
    arrivals = [stream.expect(marker) for stream in streams]
    (await api.post(f"/handoffs/{handoff['id']}/claim", headers=headers)).raise_for_status()
    answered = time.perf_counter()
    try:
        async with asyncio.timeout(60):
            times = await asyncio.gather(*arrivals)
    except TimeoutError:
        raise RuntimeError(f"{sum(not a.done() for a in arrivals)} streams did not get the claim") from None
    return [max(0.0, (at - answered) * 1000) for at in times]


async def sse_measure(gateway_url: str, n_streams: int, samples: int,
                      gateway_pid: int | None) -> dict[str, object]:
    streams = [SseStream() for _ in range(n_streams)]
    async with httpx.AsyncClient(base_url=gateway_url + "/api/v1", timeout=30) as api:
        headers = await new_account(api, "Bench live queue")
        tree_id = (await api.post("/trees", json=TREE, headers=headers)).raise_for_status().json()["id"]
        before = rss_kib(gateway_pid) if gateway_pid else None
        try:
            for i in range(0, n_streams, 25):  # in batches, each open before the next: as clients arrive
                batch = streams[i:i + 25]
                await asyncio.gather(*(s.open(gateway_url, headers["Authorization"]) for s in batch))
                try:
                    async with asyncio.timeout(60):
                        await asyncio.gather(*(s.opened.wait() for s in batch))
                except TimeoutError:
                    raise RuntimeError(f"{sum(not s.opened.is_set() for s in batch)} streams did not open") from None
            await sse_sample(api, headers, tree_id, streams)  # warm: connections, prepared statements
            after = rss_kib(gateway_pid) if gateway_pid else None
            latencies: list[float] = []
            for _ in range(samples):
                latencies += await sse_sample(api, headers, tree_id, streams)
        finally:
            for stream in streams:
                stream.close()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    per_stream = round((after - before) / n_streams, 1) if before is not None and after is not None else None
    print(f"{n_streams} streams, {samples} claims: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {latencies[-1]:.1f} ms  "
          f"gateway {per_stream} KiB per open stream")
    return {"streams": n_streams, "sse_samples": samples, "sse_p50_ms": round(p50, 1), "sse_p99_ms": round(p99, 1),
            "gateway_kib_per_stream": per_stream}


async def run_sse(n_streams: int, samples: int, gateway_url: str | None) -> dict[str, object]:
    async with four_services(gateway_url) as (url, gateway_pid):
        figures = await sse_measure(url, n_streams, samples, gateway_pid)
    return {"bench": "liveops_sse", **figures, "command": COMMAND}


def liveops_arguments(prog: str, doc: str) -> argparse.Namespace:
    """The command line of this benchmark and of bench.liveops, which runs it as its SSE half with the same options."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--gateway-url", default=None, help="a running stack's gateway (default: start one)")
    return parser.parse_args()


def main() -> None:
    args = liveops_arguments("python -m bench._liveops_sse", __doc__)
    print(json.dumps(asyncio.run(run_sse(args.streams, args.samples, args.gateway_url))))


if __name__ == "__main__":
    main()
