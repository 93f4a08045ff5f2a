"""Creates the kit's idempotency_keys table (rfkit.idempotency), frozen as plain DDL in rfkit.frozen_ddl."""

from rfkit.frozen_ddl import IDEMPOTENCY_KEYS_V1

revision = "0005"
down_revision = "0004"
upgrade, downgrade = IDEMPOTENCY_KEYS_V1.upgrade, IDEMPOTENCY_KEYS_V1.downgrade
