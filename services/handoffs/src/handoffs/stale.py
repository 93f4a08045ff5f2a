"""The stale-claim detector: a background task that marks (and maybe releases) claims with no step in time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from handoffs import handlers, metrics
from handoffs.domain import StaleClaimFound
from rfkit.db import Database
from rfkit.logs import RepeatFilter

log = logging.getLogger(__name__)
# A database outage fails every pass: one warning a minute says so.
log.addFilter(RepeatFilter(quiet_s=60.0))

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class StaleDetector:
    """Runs a pass every `interval_s`; any number of replicas may run one (the database marks each claim once)."""

    def __init__(
        self,
        db: Database,
        *,
        service: str,
        interval_s: float,
        batch_size: int,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.service = service
        self.interval_s = interval_s
        self.batch_size = batch_size
        # Injectable so that tests can move time past a deadline instead of waiting for it.
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> list[StaleClaimFound]:
        """One pass: batches until no due claim is left (or another replica holds the rest)."""
        found: list[StaleClaimFound] = []
        while True:
            batch = await handlers.mark_stale_claims(db=self.db, now=self.clock(), limit=self.batch_size)
            for claim in batch:
                metrics.STALE_CLAIMS_FOUND.labels(self.service).inc()
                if claim.auto_released:
                    metrics.STALE_CLAIMS_AUTO_RELEASED.labels(self.service).inc()
                metrics.STALE_DETECTION_LAG.labels(self.service).observe(
                    max(0.0, (claim.found_at - claim.deadline).total_seconds())
                )
                log.info(
                    "claim of handoff %s found stale (deadline %s)%s",
                    claim.handoff_id,
                    claim.deadline.isoformat(),
                    ", released" if claim.auto_released else "",
                )
            found.extend(batch)
            if len(batch) < self.batch_size:
                return found

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # The database away for a moment: the claims stay due and the next pass finds them.
                metrics.STALE_DETECTOR_ERRORS.labels(self.service).inc()
                log.warning("stale-claim detector pass failed; retrying in %.1f s", self.interval_s, exc_info=True)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"{self.service}-stale-detector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
