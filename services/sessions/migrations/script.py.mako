"""${message}"""

from rfkit.frozen_ddl import Snapshot

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

# Plain SQL, never built from the SQLAlchemy metadata: once released, these statements are history
# (tests/test_migrations_frozen.py pins them; pin this one's sha256 there too).
SNAPSHOT = Snapshot(
    up=(
        # The statements that make the change, in order.
    ),
    down=(
        # The statements that undo it, in order.
    ),
)
upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade
