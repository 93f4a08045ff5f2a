"""Denied access tokens become a feed: a growing sequence number and the reason, read by the other services.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("revoked_access_tokens", sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False))
    op.add_column(
        "revoked_access_tokens", sa.Column("reason", sa.Text, nullable=False, server_default="revoked")
    )
    op.create_check_constraint(
        "ck_revoked_access_tokens_reason", "revoked_access_tokens",
        "reason IN ('revoked', 'user_deactivated', 'role_changed')",
    )
    op.create_index("uq_revoked_access_tokens_seq", "revoked_access_tokens", ["seq"], unique=True)
    # The writing transaction's id: the feed serves a row only once every transaction that could still commit a
    # smaller seq has ended, so a follower that moves its cursor past a seq never misses a smaller one.
    op.execute("ALTER TABLE revoked_access_tokens ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()")


def downgrade() -> None:
    op.drop_column("revoked_access_tokens", "txid")
    op.drop_index("uq_revoked_access_tokens_seq", table_name="revoked_access_tokens")
    op.drop_constraint("ck_revoked_access_tokens_reason", "revoked_access_tokens")
    op.drop_column("revoked_access_tokens", "reason")
    op.drop_column("revoked_access_tokens", "seq")
