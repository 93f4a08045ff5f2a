"""Widens handoff versions to bigint, the range the event contracts give `version` (a signed 64-bit integer)."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE handoffs ALTER COLUMN version TYPE bigint")
    op.execute("ALTER TABLE handoff_history ALTER COLUMN version TYPE bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE handoff_history ALTER COLUMN version TYPE integer")
    op.execute("ALTER TABLE handoffs ALTER COLUMN version TYPE integer")
