"""rfkit.tasks: a periodic pass keeps going through failures, says so once a minute, and stops when told."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from rf_testsupport import wait_until
from rfkit.tasks import BackgroundTask, PeriodicPass


@dataclass(eq=False)
class CountingPass(PeriodicPass):
    task_name = "counting"
    what = "counting"

    fail_first: int = 0
    runs: int = 0
    failures: list[str] = field(default_factory=list)

    async def run_once(self) -> int:
        self.runs += 1
        if self.runs <= self.fail_first:
            raise ConnectionError(f"database away (run {self.runs})")
        return self.runs

    def count_failure(self) -> None:
        self.failures.append(f"run {self.runs}")


async def test_a_pass_runs_again_and_again_until_stopped() -> None:
    job = CountingPass(None, service="svc", interval_s=0.01, batch_size=10)  # type: ignore[arg-type]
    job.start()
    await wait_until(lambda: _async(job.runs >= 3), timeout_s=10)
    await job.stop()
    stopped_at = job.runs
    await job.stop()  # stopping twice is fine
    assert job.failures == []
    assert job._task._task is None and job.runs == stopped_at


async def test_failed_passes_are_counted_logged_once_and_do_not_end_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    job = CountingPass(None, service="svc", interval_s=0.01, batch_size=10, fail_first=3)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="rfkit.passes"):
        job.start()
        await wait_until(lambda: _async(job.runs >= 5), timeout_s=10)
        await job.stop()
    assert job.failures == ["run 1", "run 2", "run 3"], "each failed pass counted, while its error was handled"
    warnings = [r for r in caplog.records if r.name == "rfkit.passes"]
    assert len(warnings) == 1, "one warning a minute for a failure that repeats"
    assert warnings[0].getMessage().startswith("counting pass failed; retrying in 0.0 s")


async def test_a_background_task_is_named_and_cancelled_on_stop() -> None:
    import asyncio

    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = BackgroundTask()
    task.start(forever(), name="svc-forever")
    await asyncio.wait_for(started.wait(), 10)
    running = task._task
    assert running is not None and running.get_name() == "svc-forever"
    await task.stop()
    assert running.cancelled()


async def _async(value: bool) -> bool:
    return value
