"""JSON logs on stdout, each line carrying the service name and the current request or event id."""

from __future__ import annotations

import logging
import sys
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
