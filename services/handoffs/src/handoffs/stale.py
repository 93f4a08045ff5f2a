"""The stale-claim detector: a background task that marks (and maybe releases) claims with no step in time."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from handoffs import handlers, metrics
from handoffs.domain import StaleClaimFound
from rfkit.tasks import PeriodicPass

log = logging.getLogger(__name__)


@dataclass(eq=False)
class StaleDetector(PeriodicPass):
    """Runs a pass every `interval_s`; any number of replicas may run one (the database marks each claim once)."""

    task_name = "stale-detector"
    what = "stale-claim detector"

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

    def count_failure(self) -> None:
        # The database away for a moment: the claims stay due and the next pass finds them.
        metrics.STALE_DETECTOR_ERRORS.labels(self.service).inc()
