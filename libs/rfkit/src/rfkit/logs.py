"""JSON logs on stdout, each line carrying the service name and the current request or event id."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
event_id_var: ContextVar[str | None] = ContextVar("event_id", default=None)
_service = "service"


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.service = _service
        record.request_id = request_id_var.get()
        record.event_id = event_id_var.get()
        return True


class RepeatFilter(logging.Filter):
    """A failure that repeats (a client retrying through an outage) logs once per `quiet_s`, with a count.

    Warnings and errors of the same message template within `quiet_s` of the last one shown are dropped and
    counted; the first shown after them says how many were dropped. Tracebacks are reduced to the exception's
    one-line text: the hundredth identical traceback tells nothing the first did not.
    """

    def __init__(self, quiet_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self.clock = clock
        self._shown: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self.clock()
        key = str(record.msg)
        last, dropped = self._shown.get(key, (float("-inf"), 0))
        if now - last < self.quiet_s:
            self._shown[key] = (last, dropped + 1)
            return False
        self._shown[key] = (now, 0)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.msg}: {type(exc).__name__}: {exc}"
            record.exc_info = None
            record.exc_text = None
        if dropped:
            record.msg = f"{record.msg} (repeated {dropped} times since it was last logged)"
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger to one JSON handler on stdout (idempotent)."""
    global _service
    _service = service
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_rf", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler._rf = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s %(event_id)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at ERROR while Kafka is down; the relay reports that itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
