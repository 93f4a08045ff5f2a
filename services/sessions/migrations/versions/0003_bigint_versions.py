"""Versions as bigint: the event contracts allow any signed 64-bit version (a handoff.claimed with
version 2**31 failed "value out of int32 range" and stalled the consumer).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = [
    ("session_escalations", "version"),
    ("session_escalations", "claim_version"),
    ("session_escalations", "release_version"),
    # Tree versions travel as session.started's tree_version: the same contract bound.
    ("sessions", "tree_version"),
    ("tree_versions", "version"),
    ("trees", "version"),
]


def upgrade() -> None:
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger, existing_type=sa.Integer)


def downgrade() -> None:
    for table, column in reversed(COLUMNS):
        op.alter_column(table, column, type_=sa.Integer, existing_type=sa.BigInteger)
