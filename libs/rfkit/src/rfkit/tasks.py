"""Background tasks a component starts with its service and stops with it, and the loop of a periodic one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rfkit.clock import Clock, utcnow
from rfkit.logs import RepeatFilter

if TYPE_CHECKING:
    from rfkit.db import Database


class BackgroundTask:
    """One named asyncio task of a component: started, then cancelled and awaited on stop (stopping twice is fine)."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        self._task = asyncio.create_task(work, name=name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Its cancellation is the expected end; anything else it raised was its own to log.
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def periodically(
    action: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    failed: Callable[[], object],
    wait_first: bool = False,
) -> None:
    """Run `action` every `interval_s` seconds until cancelled (first after a wait, or at once).

    A failed run never ends the loop: `failed` is called inside the `except` (so it can log with `exc_info`) and the
    next run comes at its time; a dependency away for a while makes one failure a pass, not a crash.
    """
    while True:
        if wait_first:
            await asyncio.sleep(interval_s)
        try:
            await action()
        except Exception:
            failed()
        if not wait_first:
            await asyncio.sleep(interval_s)


@dataclass(eq=False)
class PeriodicPass:
    """A pass over the service's database every `interval_s` seconds, `batch_size` rows a transaction, as a background
    task started and stopped with the service. Any number of replicas may run one: a subclass's statements take
    their rows `FOR UPDATE SKIP LOCKED`, so each row is handled by one of them.

    A subclass names its task (`task_name`), does one pass in `run_once` and counts a failed one in `count_failure`;
    a failed pass (the database away for a moment) is logged at most once a minute and the next one comes at its time.
    """

    task_name: ClassVar[str]
    what: ClassVar[str]  # the pass, in the warning of a failed one

    db: Database
    _: KW_ONLY
    service: str
    interval_s: float
    batch_size: int
    # Injectable, so that tests can move time instead of waiting for it.
    clock: Clock = utcnow
    _task: BackgroundTask = field(default_factory=BackgroundTask, init=False, repr=False)

    async def run_once(self) -> object:
        raise NotImplementedError

    def count_failure(self) -> None:
        """Counts a failed pass in the subclass's metrics (called while its exception is being handled)."""

    async def _next_pass(self) -> None:
        await self.run_once()

    def _pass_failed(self) -> None:
        self.count_failure()
        # The pass in the template: the repeat filter keys on it.
        _passes_log.warning(f"{self.what} pass failed; retrying in %.1f s", self.interval_s, exc_info=True)

    def start(self) -> None:
        loop = periodically(self._next_pass, interval_s=self.interval_s, failed=self._pass_failed)
        self._task.start(loop, name=f"{self.service}-{self.task_name}")

    async def stop(self) -> None:
        await self._task.stop()


_passes_log = logging.getLogger("rfkit.passes")
# A database outage fails every pass: one warning a minute says so.
_passes_log.addFilter(RepeatFilter(quiet_s=60.0))
