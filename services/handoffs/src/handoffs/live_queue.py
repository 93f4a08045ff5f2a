"""The live queue's engine: one LISTEN connection per process, one shared feed per account, one cursor per client.

How a change reaches a client: the commit of any handoff change writes a row of the change log and a NOTIFY
(handoffs.change_log). PostgreSQL delivers the NOTIFY to every replica's listener; the replica's feed of that
account (if any of its clients watch the account) reads the new rows once, renders each handoff once, and keeps
the rendered events in a bounded ring that all of that account's streams read from. A stream is only a cursor:
it sends what the ring holds after its cursor, and when its cursor is older than the ring (a resuming client, or
a slow one the ring has moved past) it reads the change log itself until it catches up. So memory per stream is
a cursor, memory per account is the ring, and a slow client costs its own socket buffers, never a queue.
Beside NOTIFY, each feed also reads the log every `poll_s`, so a notification lost while the listener
reconnects delays a change by at most that long, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from prometheus_client import Counter, Gauge
from tenacity import AsyncRetrying, wait_exponential

from handoffs.change_log import CHANNEL, Change, ChangeLogRepository
from handoffs.settings import Settings
from rfkit.db import Database
from rfkit.tasks import BackgroundTask, periodically

log = logging.getLogger(__name__)

OPEN_STREAMS = Gauge("rf_queue_streams_open", "Live queue streams open in this process", ["service"])
EVENTS_SENT = Counter("rf_queue_stream_events_total", "Live queue events sent to clients", ["service"])
RESETS_SENT = Counter(
    "rf_queue_stream_resets_total", "Resumptions from an id the change log no longer holds", ["service"]
)
LISTENER_UP = Gauge("rf_queue_listener_up", "1 while this process LISTENs for handoff changes", ["service"])

# (account id, handoff id) -> the handoff as GET /handoffs/{id} shows it (JSON, one line), or None if gone.
Render = Callable[[UUID, UUID], Awaitable[bytes | None]]

HEARTBEAT = b": keep-alive\n\n"
# What a client that reconnects waits before it does (the SSE `retry` field, in milliseconds).
RETRY_MS = 2000


def handoff_event(change_id: int, data: bytes) -> bytes:
    return b"id: %d\nevent: handoff\ndata: %s\n\n" % (change_id, data)


def reset_event(change_id: int, reason: str) -> bytes:
    """Tells the client that it missed changes that can no longer be replayed: it reloads the queue (GET)."""
    data = json.dumps({"reason": reason, "reload": "/api/v1/handoffs"}).encode()
    return b"id: %d\nevent: reset\ndata: %s\n\n" % (change_id, data)


class AccountFeed:
    """The changes of one account as this process has rendered them: a ring of the latest `size` events."""

    def __init__(self, queue: LiveQueue, account_id: UUID, size: int) -> None:
        self.queue = queue
        self.account_id = account_id
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=size)
        # The ring holds every change after `floor` up to `head`; None until the account's head has been read.
        self.floor: int | None = None
        self.head = 0
        self.subscribers = 0
        self.ready = asyncio.Event()
        self._dirty = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = BackgroundTask()

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next change the feed takes in (take it before reading, then wait on it)."""
        return self._changed

    def poke(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        self._task.start(self._run(), name=f"queue-feed-{self.account_id}")

    async def stop(self) -> None:
        await self._task.stop()
        self.wake()

    def wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def since(self, cursor: int, limit: int) -> list[tuple[int, bytes]] | None:
        """The ring's events after `cursor` (at most `limit`), or None when the ring does not reach back to it."""
        if self.floor is None or cursor < self.floor:
            return None
        if not self.ring or cursor >= self.head:
            return []
        start = cursor + 1 - self.ring[0][0]  # ids in the ring are dense
        return list(itertools.islice(self.ring, max(start, 0), max(start, 0) + limit))

    async def _run(self) -> None:
        queue = self.queue
        while self.floor is None:
            try:
                self.floor = self.head = await queue.head(self.account_id)
            except Exception:
                log.warning("live queue: reading the head of account %s failed", self.account_id, exc_info=True)
                await asyncio.sleep(queue.poll_s)
        self.ready.set()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), queue.poll_s)
            self._dirty.clear()
            try:
                await self._take_in()
            except Exception:
                log.warning("live queue: reading the changes of account %s failed", self.account_id, exc_info=True)

    async def _take_in(self) -> None:
        """Read, render and ring the account's changes after `head`, page by page, waking the streams each page."""
        while True:
            changes = await self.queue.changes(self.account_id, self.head, self.queue.page)
            if not changes:
                return
            for change_id, event in await self.queue.render_all(self.account_id, changes):
                if len(self.ring) == self.ring.maxlen:
                    self.floor = self.ring[0][0]
                self.ring.append((change_id, event))
            self.head = changes[-1].id
            self.wake()
            if len(changes) < self.queue.page:
                return


class LiveQueue:
    """The process's listener, the feeds of the accounts its clients watch, and the purge of the change log."""

    def __init__(self, db: Database, render: Render, settings: Settings, *, page: int = 200) -> None:
        self.db = db
        self.render = render
        self.service = settings.service_name
        self.ring_size = settings.queue_stream_ring_size
        self.poll_s = settings.queue_stream_poll_s
        self.retention_s = settings.queue_stream_retention_s
        self.purge_interval_s = settings.queue_stream_purge_interval_s
        self.heartbeat_s = settings.queue_stream_heartbeat_s
        self.page = page
        self.feeds: dict[UUID, AccountFeed] = {}
        self.listening = asyncio.Event()
        self.closing = False
        self._listener = BackgroundTask()
        self._purger = BackgroundTask()
        self._stopping: set[asyncio.Future[None]] = set()
        self._open = OPEN_STREAMS.labels(self.service)
        self._sent = EVENTS_SENT.labels(self.service)

    # --- lifecycle

    async def start(self) -> None:
        self._listener.start(self._listen(), name="queue-listener")
        purges = periodically(
            self._purge_and_say, interval_s=self.purge_interval_s, failed=_purge_failed, wait_first=True
        )
        self._purger.start(purges, name="queue-purge")

    async def stop(self) -> None:
        self.closing = True
        await self._listener.stop()
        await self._purger.stop()
        for feed in list(self.feeds.values()):
            await feed.stop()  # wakes its streams, which see `closing` and end
        LISTENER_UP.labels(self.service).set(0)

    # --- the change log (each read its own short transaction)

    async def head(self, account_id: UUID) -> int:
        async with self.db.read() as session:
            return await ChangeLogRepository(session).head(account_id=account_id)

    async def changes(self, account_id: UUID, after_id: int, limit: int) -> list[Change]:
        async with self.db.read() as session:
            return await ChangeLogRepository(session).after(account_id=account_id, after_id=after_id, limit=limit)

    async def purge(self) -> int:
        before = datetime.now(UTC) - timedelta(seconds=self.retention_s)
        async with self.db.unit_of_work() as uow:
            return await ChangeLogRepository(uow.session).purge_system_wide(before=before)

    async def render_all(self, account_id: UUID, changes: list[Change]) -> list[tuple[int, bytes]]:
        """Each change as its SSE event; a handoff changed several times in the batch is read once."""
        rendered: dict[UUID, bytes | None] = {}
        out = []
        for change in changes:
            if change.handoff_id not in rendered:
                rendered[change.handoff_id] = await self.render(account_id, change.handoff_id)
            data = rendered[change.handoff_id]
            if data is not None:
                out.append((change.id, handoff_event(change.id, data)))
        return out

    # --- one client

    async def stream(
        self,
        *,
        account_id: UUID,
        last_event_id: int | None,
        expires_at: float,
        still_valid: Callable[[], bool] = lambda: True,
    ) -> AsyncIterator[bytes]:
        """The SSE body of one client: its account's changes after `last_event_id` (else from now on), a comment
        every `heartbeat_s` of silence, until `expires_at` (epoch seconds, the token's expiry) or `still_valid()`
        turns false (the token was revoked)."""
        feed = self._join(account_id)
        self._open.inc()
        try:
            # The account's head as its feed read it: one query per account and process, not one per client. The
            # feed may trail the database by a change still being taken in; starting there sends that change too.
            try:
                async with asyncio.timeout(max(expires_at - time.time(), 0.0)):
                    await feed.ready.wait()
            except TimeoutError:
                return  # the token expired while the database could not be read
            head = feed.head
            if last_event_id is not None and last_event_id > head:
                head = max(head, await self.head(account_id))
            if last_event_id is None:
                cursor = head
            elif last_event_id > head:
                # An id this account never reached (another deployment's, or a restored database): start afresh.
                RESETS_SENT.labels(self.service).inc()
                yield reset_event(head, "the last event id is unknown here")
                cursor = head
            else:
                cursor = last_event_id
            # First block after the cursor is fixed: a client that has read it will see every later change.
            yield b"retry: %d\n\n" % RETRY_MS
            quiet_until = time.monotonic() + self.heartbeat_s
            while not self.closing and time.time() < expires_at and still_valid():
                changed = feed.changed
                chunk, cursor = await self._next(feed, cursor)
                if chunk:
                    yield chunk
                    quiet_until = time.monotonic() + self.heartbeat_s
                    continue
                wait_s = min(quiet_until - time.monotonic(), expires_at - time.time())
                try:
                    # asyncio.timeout, not wait_for: no task per wait (all of an account's streams wake at once).
                    async with asyncio.timeout(max(wait_s, 0.0)):
                        await changed.wait()
                except TimeoutError:
                    if time.monotonic() >= quiet_until:
                        yield HEARTBEAT
                        quiet_until = time.monotonic() + self.heartbeat_s
            if time.time() >= expires_at:
                yield b": token expired\n\n"
        finally:
            self._open.dec()
            self._leave(feed)

    async def _next(self, feed: AccountFeed, cursor: int) -> tuple[bytes, int]:
        """What to send after `cursor` (possibly nothing) and the cursor after it."""
        ringed = feed.since(cursor, self.page)
        if ringed is not None:
            if not ringed:
                return b"", cursor
            self._sent.inc(len(ringed))
            return b"".join(event for _, event in ringed), ringed[-1][0]
        # Older than the ring (or the feed is starting): from the change log, rendered for this client alone.
        changes = await self.changes(feed.account_id, cursor, self.page)
        if not changes:
            head = await self.head(feed.account_id)
            if head <= cursor:
                return b"", cursor
            # Changes after the cursor happened but none is kept any more (all purged).
            RESETS_SENT.labels(self.service).inc()
            return reset_event(head, "changes after the last event id are no longer kept"), head
        parts = []
        if changes[0].id > cursor + 1:
            # Ids are dense per account: a hole is what the purge removed.
            RESETS_SENT.labels(self.service).inc()
            parts.append(reset_event(changes[0].id - 1, "changes after the last event id are no longer kept"))
        events = await self.render_all(feed.account_id, changes)
        self._sent.inc(len(events))
        parts += [event for _, event in events]
        return b"".join(parts), changes[-1].id

    def _join(self, account_id: UUID) -> AccountFeed:
        feed = self.feeds.get(account_id)
        if feed is None:
            feed = self.feeds[account_id] = AccountFeed(self, account_id, self.ring_size)
            feed.start()
        feed.subscribers += 1
        return feed

    def _leave(self, feed: AccountFeed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0 and self.feeds.get(feed.account_id) is feed:
            del self.feeds[feed.account_id]
            task = asyncio.ensure_future(feed.stop())
            self._stopping.add(task)  # referenced until it ends
            task.add_done_callback(self._stopping.discard)

    # --- NOTIFY

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        account, _, _ = payload.partition(":")
        try:
            feed = self.feeds.get(UUID(account))
        except ValueError:
            return
        if feed is not None:
            feed.poke()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection; reconnect when it is lost, then have every feed read the log again."""
        dsn = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        up = LISTENER_UP.labels(self.service)
        async for attempt in AsyncRetrying(
            wait=wait_exponential(min=0.2, max=5),
            before_sleep=lambda state: log.warning("live queue: LISTEN failed (%r); retrying", state.outcome),
        ):
            with attempt:
                connection = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())  # type: ignore[misc]
                try:
                    await connection.add_listener(CHANNEL, self._on_notify)
                    up.set(1)
                    self.listening.set()
                    for feed in self.feeds.values():
                        feed.poke()  # what was committed while nobody listened
                    while not lost.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lost.wait(), 30)
                        if not lost.is_set():
                            # A half-open connection never says it is lost: ask it something now and then.
                            await asyncio.wait_for(connection.fetchval("SELECT 1"), 10)
                    raise ConnectionError("the LISTEN connection was lost")
                except Exception:
                    log.warning("live queue: LISTEN connection lost; reconnecting")
                    raise
                finally:
                    up.set(0)
                    self.listening.clear()
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)

    async def _purge_and_say(self) -> None:
        purged = await self.purge()
        if purged:
            log.info("live queue: purged %d changes older than %.0fs", purged, self.retention_s)


def _purge_failed() -> None:
    log.warning("live queue: purging the change log failed", exc_info=True)
