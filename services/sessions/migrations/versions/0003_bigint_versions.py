"""Widens versions to bigint, the contracts' range (a version of 2**31 was "out of int32 range" for a consumer)."""

from rfkit.frozen_ddl import Snapshot

revision = "0003"
down_revision = "0002"

SNAPSHOT = Snapshot(
    up=(
        "ALTER TABLE session_escalations ALTER COLUMN version TYPE bigint,"
        " ALTER COLUMN claim_version TYPE bigint, ALTER COLUMN release_version TYPE bigint",
        # Tree versions travel as session.started's tree_version: the same contract bound.
        "ALTER TABLE sessions ALTER COLUMN tree_version TYPE bigint",
        "ALTER TABLE tree_versions ALTER COLUMN version TYPE bigint",
        "ALTER TABLE trees ALTER COLUMN version TYPE bigint",
    ),
    down=(
        "ALTER TABLE trees ALTER COLUMN version TYPE integer",
        "ALTER TABLE tree_versions ALTER COLUMN version TYPE integer",
        "ALTER TABLE sessions ALTER COLUMN tree_version TYPE integer",
        "ALTER TABLE session_escalations ALTER COLUMN release_version TYPE integer,"
        " ALTER COLUMN claim_version TYPE integer, ALTER COLUMN version TYPE integer",
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
