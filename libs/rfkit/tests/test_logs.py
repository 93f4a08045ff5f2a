"""A failure that repeats is logged once per quiet period, with a count of the ones left out and no traceback."""

from __future__ import annotations

import logging

import pytest

from rfkit.logs import RepeatFilter


def test_a_repeating_failure_is_logged_once_per_quiet_period_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    logger = logging.getLogger("rfkit.tests.repeat")
    logger.addFilter(RepeatFilter(quiet_s=300, clock=lambda: now[0]))
    caplog.set_level(logging.DEBUG, logger=logger.name)

    def fail(message: str = "Kafka error occurred") -> None:
        try:
            raise ConnectionError("Unable to bootstrap")
        except ConnectionError:
            logger.exception(message)

    for _ in range(50):  # a retry a second for 50 s
        fail()
        now[0] += 1
    logger.info("an informational line is never held back")
    fail("another failure")
    now[0] += 300
    fail()

    shown = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert shown == [
        ("ERROR", "Kafka error occurred: ConnectionError: Unable to bootstrap", None),
        ("INFO", "an informational line is never held back", None),
        ("ERROR", "another failure: ConnectionError: Unable to bootstrap", None),
        ("ERROR", "Kafka error occurred: ConnectionError: Unable to bootstrap"
                  " (repeated 49 times since it was last logged)", None),
    ]
