"""Creates business hours: one schedule per account, read at query time by `clock=business` (none per handoff)."""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE business_hours (
            account_id uuid PRIMARY KEY,
            timezone text NOT NULL,
            week jsonb NOT NULL,
            holidays jsonb NOT NULL,
            version bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE business_hours")
