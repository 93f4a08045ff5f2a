"""Creates business hours: one schedule per account, read at query time by `clock=business` (none per handoff)."""

from rfkit.frozen_ddl import Snapshot

revision = "0006"
down_revision = "0005"

SNAPSHOT = Snapshot(
    up=(
        """
        CREATE TABLE business_hours (
            account_id uuid PRIMARY KEY,
            timezone text NOT NULL,
            week jsonb NOT NULL,
            holidays jsonb NOT NULL,
            version bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """,
    ),
    down=("DROP TABLE business_hours",),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
