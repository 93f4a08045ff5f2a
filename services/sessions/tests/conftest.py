"""Fixtures of the sessions tests: one running service per module (real PostgreSQL and Kafka), callers, trees."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest_asyncio

from rf_testsupport import Caller, RunningApp, new_database, read_to_end, unique_prefix, wait_until
from rfkit.auth import generate_keypair
from sessions.main import create_app
from sessions.settings import Settings

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "libs" / "contracts" / "src" / "rf_contracts" / "schemas"

# question -> action -> solution, with a branch to an escalation.
SAMPLE_TREE: dict[str, Any] = {
    "title": "Printer does not print",
    "description": "Office printers that stopped printing after an update",
    "category": "hardware",
    "tags": ["printer", "office"],
    "root_node_id": "start",
    "nodes": [
        {
            "id": "start",
            "kind": "question",
            "text": "Is the printer powered on?",
            "options": [{"label": "Yes", "next_node_id": "restart"}, {"label": "No", "next_node_id": "power"}],
        },
        {"id": "power", "kind": "solution", "text": "Switch the printer on.", "options": []},
        {
            "id": "restart",
            "kind": "action",
            "text": "Restart the print spooler.",
            "options": [
                {"label": "Works now", "next_node_id": "done"},
                {"label": "Still broken", "next_node_id": "esc"},
            ],
        },
        {"id": "done", "kind": "solution", "text": "Spooler restart fixed it.", "options": []},
        {"id": "esc", "kind": "escalation", "text": "Escalate to the hardware team.", "options": []},
    ],
}


def tree_body(**over: Any) -> dict[str, Any]:
    body = copy.deepcopy(SAMPLE_TREE)
    body.update(over)
    return body


@dataclass
class Env:
    """The running service and what tests need around it."""

    running: RunningApp
    private_pem: str
    prefix: str
    bootstrap: str

    @property
    def client(self) -> Any:
        return self.running.client

    @staticmethod
    def tree_body(**over: Any) -> dict[str, Any]:
        return tree_body(**over)

    def caller(self, role: str = "engineer") -> Caller:
        """A user of a fresh account (tests keep to their own accounts)."""
        return Caller(self.private_pem, role=role)

    def colleague(self, of: Caller, role: str = "engineer") -> Caller:
        return of.colleague(self.private_pem, role)

    async def create_tree(self, who: Caller, **over: Any) -> dict[str, Any]:
        r = await self.client.post("/api/v1/trees", json=tree_body(**over), headers=who.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def start_session(self, who: Caller, tree_id: str | None = None, **body: Any) -> dict[str, Any]:
        if tree_id is None:
            tree_id = (await self.create_tree(who))["id"]
        r = await self.client.post("/api/v1/sessions", json={"tree_id": tree_id, **body}, headers=who.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def events(self, topic: str, *, session_id: str) -> list[Any]:
        """All records of one session on a topic (the module's sessions share it), read once the service's outbox
        is drained (so duplicates or stray events would show), each checked against the committed JSON Schema.
        """
        relay = self.running.app.state.runtime.relay

        async def drained() -> bool:
            return int(await relay.pending_count()) == 0

        await wait_until(drained, timeout_s=30)
        records = await read_to_end(self.bootstrap, self.prefix + topic)
        mine = [r for r in records if r.key == session_id.encode()]
        schema = json.loads((SCHEMA_DIR / f"{topic}.json").read_text())
        for record in mine:
            jsonschema.validate(json.loads(record.value), schema, format_checker=jsonschema.FormatChecker())
        return mine

@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Env]:
    # The session-scoped factory: one database per test module, dropped when the test session ends.
    url = await new_database(make_session_database)
    prefix = unique_prefix()
    private_pem, public_pem = generate_keypair()
    settings = Settings(
        database_url=url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        jwt_public_key=public_pem,
        env="test",
        outbox_poll_interval_s=0.05,
    )
    async with RunningApp(create_app(settings)) as running:
        yield Env(running, private_pem, prefix, kafka_bootstrap)

