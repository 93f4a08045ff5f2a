"""Background tasks a component starts with its service and stops with it, and the loop of a periodic one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


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
