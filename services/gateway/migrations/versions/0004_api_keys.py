"""Creates API keys for machine clients: stored as a hash, with a role, an optional expiry, revocation, last use."""

from rfkit.frozen_ddl import Snapshot

revision = "0004"
down_revision = "0003"

SNAPSHOT = Snapshot(
    up=(
        """
        CREATE TABLE api_keys (
            id uuid PRIMARY KEY,
            account_id uuid NOT NULL REFERENCES accounts (id),
            name text NOT NULL,
            role text NOT NULL CONSTRAINT ck_api_keys_role CHECK (role IN ('viewer', 'engineer', 'admin')),
            prefix text NOT NULL,
            secret_hash text NOT NULL,
            created_by uuid NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            last_used_at timestamptz,
            revoked_at timestamptz
        )
        """,
        "CREATE UNIQUE INDEX uq_api_keys_secret_hash ON api_keys (secret_hash)",
        "CREATE INDEX ix_api_keys_account_created ON api_keys (account_id, created_at, id)",
        # Revoking a key denies the access tokens the gateway issued for it, through the same feed as a logout.
        "ALTER TABLE revoked_access_tokens DROP CONSTRAINT ck_revoked_access_tokens_reason",
        "ALTER TABLE revoked_access_tokens ADD CONSTRAINT ck_revoked_access_tokens_reason "
        "CHECK (reason IN ('revoked', 'user_deactivated', 'role_changed', 'api_key_revoked'))",
    ),
    down=(
        "DELETE FROM revoked_access_tokens WHERE reason = 'api_key_revoked'",
        "ALTER TABLE revoked_access_tokens DROP CONSTRAINT ck_revoked_access_tokens_reason",
        "ALTER TABLE revoked_access_tokens ADD CONSTRAINT ck_revoked_access_tokens_reason "
        "CHECK (reason IN ('revoked', 'user_deactivated', 'role_changed'))",
        "DROP TABLE api_keys",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
