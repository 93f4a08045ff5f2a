"""The stale-claim detector: a background task that marks (and maybe releases) claims with no step in time."""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass, field

from handoffs import handlers, metrics
from handoffs.domain import StaleClaimFound
from rfkit.clock import Clock, utcnow
from rfkit.db import Database
from rfkit.logs import RepeatFilter
from rfkit.tasks import BackgroundTask, periodically

log = logging.getLogger(__name__)
# A database outage fails every pass: one warning a minute says so.
log.addFilter(RepeatFilter(quiet_s=60.0))


@dataclass(eq=False)
class StaleDetector:
    """Runs a pass every `interval_s`; any number of replicas may run one (the database marks each claim once)."""

    db: Database
    _: KW_ONLY
    service: str
    interval_s: float
    batch_size: int
    # Injectable so that tests can move time past a deadline instead of waiting for it.
    clock: Clock = utcnow
    _task: BackgroundTask = field(default_factory=BackgroundTask, init=False, repr=False)

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

    def _pass_failed(self) -> None:
        # The database away for a moment: the claims stay due and the next pass finds them.
        metrics.STALE_DETECTOR_ERRORS.labels(self.service).inc()
        log.warning("stale-claim detector pass failed; retrying in %.1f s", self.interval_s, exc_info=True)

    def start(self) -> None:
        loop = periodically(self.run_once, interval_s=self.interval_s, failed=self._pass_failed)
        self._task.start(loop, name=f"{self.service}-stale-detector")

    async def stop(self) -> None:
        await self._task.stop()
