"""Widens handoff versions to bigint, the range the event contracts give `version` (a signed 64-bit integer)."""

from rfkit.frozen_ddl import Snapshot

revision = "0003"
down_revision = "0002"

SNAPSHOT = Snapshot(
    up=(
        "ALTER TABLE handoffs ALTER COLUMN version TYPE bigint",
        "ALTER TABLE handoff_history ALTER COLUMN version TYPE bigint",
    ),
    down=(
        "ALTER TABLE handoff_history ALTER COLUMN version TYPE integer",
        "ALTER TABLE handoffs ALTER COLUMN version TYPE integer",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
