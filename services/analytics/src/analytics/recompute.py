"""The business-seconds recompute loop: a background pass that prices handoffs for their account's current schedule.

Any number of replicas may run it: each batch locks its rows (`FOR UPDATE SKIP LOCKED`), so a handoff is priced by
one of them, and a priced one no longer matches the work list. A schedule change (PUT business-hours) raises the
account's version, which puts its handoffs back on the list; so does the ingest when it moves a claim or a first
action (it resets their version to 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from analytics import handlers, metrics
from rfkit.db import Database
from rfkit.logs import RepeatFilter

log = logging.getLogger(__name__)
# A database outage fails every pass: one warning a minute says so.
log.addFilter(RepeatFilter(quiet_s=60.0))

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class BusinessRecompute:
    """Runs a pass every `interval_s` (sooner after `wake()`); safe in many replicas at once."""

    def __init__(
        self, db: Database, *, service: str, interval_s: float, batch_size: int, clock: Clock = system_clock
    ) -> None:
        self.db = db
        self.service = service
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One pass over every account with work; returns the handoffs this process priced."""
        started = time.perf_counter()
        priced = await handlers.recompute_business_seconds(db=self.db, now=self.clock(), batch_size=self.batch_size)
        metrics.BUSINESS_ROWS_RECOMPUTED.labels(self.service).inc(priced)
        metrics.BUSINESS_RECOMPUTE_PASS_SECONDS.labels(self.service).set(time.perf_counter() - started)
        metrics.BUSINESS_RECOMPUTE_LAST_PASS.labels(self.service).set(time.time())
        if priced:
            log.info("business seconds priced for %d handoffs", priced)
        return priced

    def wake(self) -> None:
        """Start the next pass now (this replica changed a schedule): answers catch up sooner."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                # The database away for a moment: the rows stay on the work list and the next pass prices them.
                metrics.BUSINESS_RECOMPUTE_ERRORS.labels(self.service).inc()
                log.warning("business-seconds pass failed; retrying in %.1f s", self.interval_s, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"{self.service}-business-recompute")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
