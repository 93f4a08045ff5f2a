"""The kit's frozen DDL snapshots stay as they were released: migrations that ran them are history."""

from __future__ import annotations

import pytest

from rfkit import frozen_ddl

# Never update a hash here to make this test pass: a database that already ran the snapshot would not get the change.
# Add a new snapshot (KIT_TABLES_V2, ...) holding only the change, and a new migration running it in every service.
RELEASED = {
    "KIT_TABLES_V1": "8db2c705e916966e9abdc41075d8a0119600c7b8a553e3bcb76e56e6b55b504a",
    "IDEMPOTENCY_KEYS_V1": "f8304d12c2247f2fd022614ae76b178b78474628acc114657ea5a8c199cc3edd",
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_a_released_snapshot_is_never_edited(name: str) -> None:
    snapshot = getattr(frozen_ddl, name)
    assert snapshot.sha256() == RELEASED[name], (
        f"rfkit.frozen_ddl.{name} changed: never edit a released snapshot (databases already ran it); "
        "add a new snapshot with the change and a new migration in every service"
    )


def test_every_snapshot_is_pinned() -> None:
    snapshots = {name for name, value in vars(frozen_ddl).items() if isinstance(value, frozen_ddl.Snapshot)}
    assert snapshots == set(RELEASED), "pin each new snapshot's sha256 in RELEASED when it is released"
