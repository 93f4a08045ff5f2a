"""The drill-down's CSV through the gateway: each cell holds the JSON answer's value (ids, enums and numbers in the
same text, instants in Python's isoformat)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from rf_contracts import Event


async def test_every_csv_cell_reads_as_the_json_answer_writes_that_value(env, gateway, history) -> None:
    acc = await gateway.account()
    # Instants with and without microseconds, whole and fractional deltas, both kinds of first actor, no action.
    base = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)
    events: list[Event] = []
    for i, (delta, actor, micros) in enumerate(
        [(20.0, "human", 0), (0.000001, "ai", 250_000), (4000.5, "human", 7), (None, None, 0), (0.0, "ai", 0)]
    ):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        claimed_at = base + timedelta(minutes=i, microseconds=micros)
        events += [
            acc.started(session, uuid.uuid4(), claimed_at - timedelta(minutes=3), title=f"t{i}", category="c"),
            acc.requested(handoff, session, claimed_at - timedelta(minutes=1), priority="high"),
            acc.claimed(handoff, session, claimed_at, version=2),
        ]
        if delta is not None:
            events.append(acc.step(session, claimed_at + timedelta(seconds=delta), actor_type=actor))
    await env.publish(events)
    await env.settle()

    for order in ("slowest", "newest"):
        page = await gateway.ok("/handoffs", acc.account_id, period="7d", order=order, limit=500)
        answer = await gateway.get("/handoffs", acc.account_id, period="7d", order=order, format="csv")
        assert answer.status_code == 200, answer.text
        rows = list(csv.reader(io.StringIO(answer.text, newline="")))
        assert len(rows) == len(page["items"]) + 1 == 6
        # waiting_seconds is measured at each request's own instant: compared only where it is null.
        for row, item in zip(rows[1:], page["items"], strict=True):
            cells = dict(zip(rows[0], row, strict=True))
            for name, value in item.items():
                if name == "waiting_seconds" and value is not None:
                    assert float(cells[name]) >= 0
                elif value is None:
                    assert cells[name] == "", (name, cells)
                elif isinstance(value, float):
                    assert cells[name] == str(value), (name, cells, value)
                elif name in ("claimed_at", "first_action_at"):
                    at = datetime.fromisoformat(value)
                    assert cells[name] == at.astimezone(UTC).isoformat(), (name, cells, value)
                else:
                    assert cells[name] == value, (name, cells, value)
