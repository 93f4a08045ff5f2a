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
from dataclasses import dataclass, field

from analytics import handlers, metrics
from rfkit.tasks import PeriodicPass, periodically

log = logging.getLogger(__name__)


@dataclass(eq=False)
class BusinessRecompute(PeriodicPass):
    """Runs a pass every `interval_s` (sooner after `wake()`); safe in many replicas at once."""

    task_name = "business-recompute"
    what = "business-seconds"

    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

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

    async def _next_pass(self) -> None:
        # The wait is the pass's own (until `wake()` or `interval_s`), so the loop around it adds none; a set event at
        # start makes the first pass run at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval_s)
        self._wake.clear()
        await self.run_once()

    def count_failure(self) -> None:
        # The database away for a moment: the rows stay on the work list and the next pass prices them.
        metrics.BUSINESS_RECOMPUTE_ERRORS.labels(self.service).inc()

    def start(self) -> None:
        self._wake.set()
        # No wait between passes from the loop: `_next_pass` waits for `wake()` or `interval_s` itself.
        loop = periodically(self._next_pass, interval_s=0.0, failed=self._pass_failed)
        self._task.start(loop, name=f"{self.service}-{self.task_name}")
