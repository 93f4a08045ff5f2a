"""Test support for ResolutionFlow's tests and benchmarks (a dev dependency only: no service or library imports it).

The kit-level helpers are re-exported here; the gateway's (a running gateway, users to act as) are in
rf_testsupport.gateway, which imports the gateway service.
"""

from rf_testsupport.apps import RunningApp, Served, free_port, loopback_socket, running
from rf_testsupport.callers import Caller
from rf_testsupport.compare import assert_same_answers, differences
from rf_testsupport.databases import new_database
from rf_testsupport.kafka import group_lag, make_topics, produce, read_to_end, read_topic, step_event, unique_prefix
from rf_testsupport.waiting import wait_until

__all__ = [
    "Caller",
    "RunningApp",
    "Served",
    "assert_same_answers",
    "differences",
    "free_port",
    "group_lag",
    "loopback_socket",
    "make_topics",
    "new_database",
    "produce",
    "read_to_end",
    "read_topic",
    "running",
    "step_event",
    "unique_prefix",
    "wait_until",
]
