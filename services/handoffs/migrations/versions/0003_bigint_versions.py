"""Handoff versions as bigint, the range the event contracts give `version` (a signed 64-bit integer).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = [("handoffs", "version"), ("handoff_history", "version")]


def upgrade() -> None:
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger, existing_type=sa.Integer)


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        op.alter_column(table, column, type_=sa.Integer, existing_type=sa.BigInteger)
