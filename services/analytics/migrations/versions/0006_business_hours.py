"""Business hours: one schedule per account, read at query time by `clock=business` (nothing stored per handoff).

Plain DDL, frozen (a later change needs a new migration).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_hours",
        sa.Column("account_id", sa.Uuid, primary_key=True),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("week", JSONB, nullable=False),
        sa.Column("holidays", JSONB, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("business_hours")
