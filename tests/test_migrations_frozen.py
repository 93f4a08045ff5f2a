"""Every service's released migrations stay as they were: a database that already ran one never runs it again."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rfkit.frozen_ddl import Snapshot

VERSIONS = sorted((Path(__file__).resolve().parents[1] / "services").glob("*/migrations/versions/*.py"))

# Never update a hash here to make this test pass: a database that already ran the migration would not get the
# change. Write a new migration holding only the change (and pin its hash here once it is released).
# The kit's migrations (0001, 0005) run rfkit.frozen_ddl's snapshots, so their hashes are those of test_frozen_ddl.
RELEASED = {
    "analytics/0001_kit_tables.py": "8db2c705e916966e9abdc41075d8a0119600c7b8a553e3bcb76e56e6b55b504a",
    "analytics/0002_escalation_read_model.py": "4d66411ddeb03b1e11d45378a1bcc4522530c1de23a4618c474d41fe3a34aa22",
    "analytics/0003_first_actor_and_exclusions.py": "199de7ec016284310fc1720fc9d2338784b2c29bf9c9516606ee11485950afd1",
    "analytics/0004_insights.py": "fe62a9eb122821ecbee2d04a99e8b1875dc2f903b7b26bff0c56f1a2d2fd100e",
    "analytics/0005_idempotency.py": "f8304d12c2247f2fd022614ae76b178b78474628acc114657ea5a8c199cc3edd",
    "analytics/0006_business_hours.py": "fd52423328d74ff977b9d0bd14c0fdefd2973a059674786f1e57ce60b72aa407",
    "analytics/0007_business_seconds.py": "ed79b28a60a2846fd4a815370a3820bb96e19583f1f95acadc78197694b96d0c",
    "analytics/0008_handoff_trees.py": "c2891cd151f4ecf54f7a6871edeaba54db89fcf104e53248a06bc50add9f36d3",
    "analytics/0009_csv_cells.py": "38f3ad9af004ad3dba8f3fcad6c070be605bfc8d0aca80df4d12067d90556144",
    "gateway/0001_kit_tables.py": "8db2c705e916966e9abdc41075d8a0119600c7b8a553e3bcb76e56e6b55b504a",
    "gateway/0002_identity.py": "c4411580d7ef5488725b83cb4a0716b9160933e0350297d12e30101b33b6d439",
    "gateway/0003_token_denials.py": "ea3c73d36c9aee615c425260ab1567f37fe53dcdf60a0d4765f6d6f3de9f7f82",
    "gateway/0004_api_keys.py": "c4686f76c107a613a409a0a49c32d805d18e03c3342ebab64414f7e7cdc77125",
    "gateway/0005_idempotency.py": "f8304d12c2247f2fd022614ae76b178b78474628acc114657ea5a8c199cc3edd",
    "handoffs/0001_kit_tables.py": "8db2c705e916966e9abdc41075d8a0119600c7b8a553e3bcb76e56e6b55b504a",
    "handoffs/0002_handoffs.py": "08684670f4f6dfc34aa1b451f110152acac7e254b0f8c3b47518d126394b811e",
    "handoffs/0003_bigint_versions.py": "164011d7c5cef8db6a995b4b36c6a585e01ac1613eeeef1238ba4ac2d2318646",
    "handoffs/0004_stale_claims.py": "dee130f968e930f8ff92408b4f38b3333f560d12583249d3a67d0b2ea0ab4fbf",
    "handoffs/0005_idempotency.py": "f8304d12c2247f2fd022614ae76b178b78474628acc114657ea5a8c199cc3edd",
    "handoffs/0006_queue_stream.py": "230ac9bdbd366ae6251f3221c880da32ebe8a5c0859cda3309eadd10c92e98db",
    "sessions/0001_kit_tables.py": "8db2c705e916966e9abdc41075d8a0119600c7b8a553e3bcb76e56e6b55b504a",
    "sessions/0002_trees_sessions.py": "a6fd16d6b08f8991b2be05ad03e5357d3bf3de6cefd2a365c499d4f5a2c788cf",
    "sessions/0003_bigint_versions.py": "6b9220d195c33dfba98174715a8676bb62d14b2e3cac46b76743f01216e8d5fe",
    "sessions/0005_idempotency.py": "f8304d12c2247f2fd022614ae76b178b78474628acc114657ea5a8c199cc3edd",
}


def _name(path: Path) -> str:
    """services/<service>/migrations/versions/<file> as <service>/<file>."""
    return f"{path.parents[2].name}/{path.name}"


def _snapshot(name: str) -> Snapshot:
    """The one Snapshot the migration runs: `upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade`."""
    (path,) = (path for path in VERSIONS if _name(path) == name)
    spec = importlib.util.spec_from_file_location(f"migration_{path.parents[2].name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    snapshots = [value for value in vars(module).values() if isinstance(value, Snapshot)]
    assert len(snapshots) == 1, f"{name}: a migration holds its statements as one rfkit.frozen_ddl.Snapshot"
    (snapshot,) = snapshots
    assert (module.upgrade, module.downgrade) == (snapshot.upgrade, snapshot.downgrade), (
        f"{name}: a migration runs its snapshot (upgrade, downgrade = SNAPSHOT.upgrade, SNAPSHOT.downgrade)"
    )
    return snapshot


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_a_released_migration_is_never_edited(name: str) -> None:
    assert _snapshot(name).sha256() == RELEASED[name], (
        f"{name} changed: never edit a released migration (databases already ran it); "
        "write a new migration holding the change"
    )


def test_every_migration_is_pinned() -> None:
    assert {_name(path) for path in VERSIONS} == set(RELEASED), "pin each new migration's sha256 in RELEASED"
