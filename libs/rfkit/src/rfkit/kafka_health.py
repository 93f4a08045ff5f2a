"""Kafka health as a service sees it: probed in the background, a metric and an outage count, one log line per change.

Readiness deliberately ignores it (docs/operations.md, "Kafka outages"): the outbox keeps what services publish
and the consumers resume where they stopped, so an outage is something to alert on, not to route around.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from rfkit import metrics
from rfkit.tasks import BackgroundTask, periodically

log = logging.getLogger(__name__)


async def kafka_answers(bootstrap: str, timeout: float = 2.0, **connection: Any) -> bool:
    """True when a bootstrap broker answers a metadata request (`connection`: the clients' TLS and SASL options).

    A Kafka request, not merely a TCP connection: a service-mesh sidecar or a proxy on the way accepts
    connections whether or not a broker is behind it.
    """
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), client_id="rf-kafka-health",
        **connection,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()
    return True


class KafkaHealth:
    """Asks Kafka every `interval_s` whether it answers; reports outages as metrics and two log lines each.

    An outage begins at the first of `misses` unanswered probes in a row: one slow answer on a loaded machine is
    not an outage (and would page somebody for nothing).
    """

    def __init__(
        self, bootstrap: str, *, service: str, interval_s: float = 5.0, timeout_s: float = 5.0, misses: int = 2,
        **connection: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.connection = connection
        self.service = service
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.misses = misses
        # None until the first probe: the first answer is not a change to log unless it is an outage.
        self.up: bool | None = None
        self.down_since: float | None = None
        self._missed: list[float] = []
        self._task = BackgroundTask()
        metrics.KAFKA_UP.labels(service)  # exported (as 0) before the first probe answers
        metrics.KAFKA_OUTAGES.labels(service)

    async def start(self) -> None:
        await self.check()
        # A probe must never end the task: the metric would freeze at its last value.
        probes = periodically(self.check, interval_s=self.interval_s, failed=_probe_failed, wait_first=True)
        self._task.start(probes, name=f"{self.service}-kafka-health")

    async def stop(self) -> None:
        await self._task.stop()

    async def check(self) -> bool:
        """Probe once and record the answer."""
        reachable = await kafka_answers(self.bootstrap, self.timeout_s, **self.connection)
        self.record(reachable)
        return reachable

    def record(self, reachable: bool) -> None:
        if reachable:
            self._missed.clear()
            if self.up is not True and self.down_since is not None:
                lasted = time.monotonic() - self.down_since
                metrics.KAFKA_OUTAGE_SECONDS.labels(self.service).inc(lasted)
                log.warning(
                    "Kafka reachable again at %s after an outage of %.1f s",
                    self.bootstrap, lasted, extra={"kafka_outage_s": round(lasted, 3)},
                )
            self.down_since = None
            self.up = True
            metrics.KAFKA_UP.labels(self.service).set(1)
            return
        self._missed.append(time.monotonic())
        if len(self._missed) >= self.misses and self.up is not False:
            self.down_since = self._missed[0]
            self.up = False
            metrics.KAFKA_UP.labels(self.service).set(0)
            metrics.KAFKA_OUTAGES.labels(self.service).inc()
            log.warning(
                "Kafka unreachable at %s: outage began (the API keeps serving; events wait in the outbox)",
                self.bootstrap,
            )


def _probe_failed() -> None:
    log.debug("kafka probe failed", exc_info=True)
