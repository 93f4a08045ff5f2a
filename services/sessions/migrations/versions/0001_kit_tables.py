"""Creates the kit's outbox and processed_events tables, frozen as plain DDL in rfkit.frozen_ddl."""

from rfkit.frozen_ddl import KIT_TABLES_V1

revision = "0001"
down_revision = None
upgrade, downgrade = KIT_TABLES_V1.upgrade, KIT_TABLES_V1.downgrade
