"""Each service's migrations and its SQLAlchemy metadata describe one schema: the tests fail listing any difference."""

from __future__ import annotations

import asyncio
import importlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.repository import Xid8
from rfkit import migrate
from rfkit.tables import kit_metadata

SERVICES = ["gateway", "sessions", "handoffs", "analytics"]
# Tables a service keeps outside its repository module: (module, metadata attribute) each.
MORE_METADATA = {"handoffs": [("handoffs.change_log", "change_log_metadata")]}
# What only the migrations define, as `catalog` prints it: no code declares these (the code relies on what they do,
# which the service's own tests exercise), so a database built from the metadata has none of them.
MIGRATION_ONLY = {
    "handoffs": (
        "function handoff_changes_record: ",
        "trigger handoff_changes_on_insert: ",
        "trigger handoff_changes_on_update: ",
    ),
    "analytics": ("function handoff_csv_cells: ", "trigger handoff_csv_cells: "),
}
T = TypeVar("T")


def service_metadata(service: str) -> list[sa.MetaData]:
    """All the tables a service's database holds: its repository's, the kit's (outbox, processed events), and
    those of MORE_METADATA."""
    more = [getattr(importlib.import_module(module), name) for module, name in MORE_METADATA.get(service, [])]
    return [importlib.import_module(f"{service}.repository").metadata, kit_metadata, *more]


@pytest.fixture(autouse=True)
def reflect_xid8(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # SQLAlchemy's PostgreSQL dialect does not know xid8: without this the reflected column is NullType, which
    # alembic's type comparison skips. Scoped to the test, so production reflection is left as it is.
    monkeypatch.setitem(ischema_names, "xid8", Xid8)
    yield


def on_connection(url: str, fn: Callable[[sa.Connection], T]) -> T:
    async def run() -> T:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def differences(url: str, metadata: list[sa.MetaData]) -> list[Any]:
    """alembic's autogenerate diff between the database at `url` and `metadata` (empty when they agree).

    Compared: tables, columns, types, nullability, server defaults, identities, primary and foreign keys, unique
    constraints and indexes (partial ones included). Not compared by alembic: CHECK constraints and the
    expressions of generated columns (PostgreSQL rewrites both); `catalog` below covers those.
    """

    def compare(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        with warnings.catch_warnings():
            # alembic compares a generated column's text with PostgreSQL's rewrite of it and only warns when they
            # read differently (analytics' casts and EXTRACT); the catalog test compares those expressions exactly.
            warnings.filterwarnings("ignore", message=r"Computed default on .* cannot be modified")
            return list(compare_metadata(context, metadata))

    return on_connection(url, compare)


# What alembic leaves out, as PostgreSQL itself prints it: every CHECK constraint and every generated column's
# expression, each index's full definition (method, order, INCLUDE, predicate), and the triggers (not those
# PostgreSQL makes for foreign keys) and functions a migration writes as plain DDL (MIGRATION_ONLY).
_CATALOG = sa.text(
    """
    SELECT 'check ' || c.conrelid::regclass || '.' || c.conname || ': ' || pg_get_constraintdef(c.oid)
      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
     WHERE n.nspname = 'public' AND c.contype = 'c'
    UNION ALL
    SELECT 'generated ' || a.attrelid::regclass || '.' || a.attname || ': ' || pg_get_expr(d.adbin, d.adrelid)
      FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      JOIN pg_class r ON r.oid = a.attrelid JOIN pg_namespace n ON n.oid = r.relnamespace
     WHERE n.nspname = 'public' AND a.attgenerated <> ''
    UNION ALL
    SELECT 'index ' || indexname || ': ' || indexdef
      FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'alembic_version'
    UNION ALL
    SELECT 'trigger ' || t.tgname || ': ' || pg_get_triggerdef(t.oid)
      FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace n ON n.oid = r.relnamespace
     WHERE n.nspname = 'public' AND NOT t.tgisinternal
    UNION ALL
    SELECT 'function ' || p.proname || ': ' || pg_get_functiondef(p.oid)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public' AND p.prokind = 'f'
    """
)


def catalog(url: str) -> set[str]:
    return on_connection(url, lambda conn: set(conn.execute(_CATALOG).scalars()))


def migrated(make_database: Any, service: str) -> str:
    url: str = make_database(f"schema_{service}")
    migrate.upgrade(service, url)
    return url


@pytest.mark.parametrize("service", SERVICES)
def test_migrated_database_matches_metadata(make_database: Any, service: str) -> None:
    url = migrated(make_database, service)
    diff = differences(url, service_metadata(service))
    assert diff == [], f"{service}: the migrations and the metadata differ:\n" + "\n".join(map(repr, diff))


@pytest.mark.parametrize("service", SERVICES)
def test_checks_generated_columns_and_indexes_match_metadata(make_database: Any, service: str) -> None:
    """The parts alembic cannot compare: a database built from the metadata prints them as the migrated one does."""
    only_migrations = MIGRATION_ONLY.get(service, ())
    migrated_catalog = catalog(migrated(make_database, service))
    from_migrations = {line for line in migrated_catalog if not line.startswith(only_migrations)}
    for prefix in only_migrations:
        found = [line for line in migrated_catalog if line.startswith(prefix)]
        assert len(found) == 1, f"{service}: the migrations should define one {prefix!r}, found {found}"
    from_metadata_url = make_database(f"schema_{service}_metadata")

    def create(conn: sa.Connection) -> None:
        for md in service_metadata(service):
            md.create_all(conn)

    on_connection(from_metadata_url, create)
    from_metadata = catalog(from_metadata_url)
    assert from_migrations, "the catalog query found nothing"
    assert from_migrations == from_metadata, (
        f"{service}: only in the migrated database: {sorted(from_migrations - from_metadata)}\n"
        f"only in the metadata: {sorted(from_metadata - from_migrations)}"
    )


def test_the_change_log_trigger_notifies_the_channel_the_replicas_listen_on(make_database: Any) -> None:
    from handoffs.change_log import CHANNEL

    (function,) = [line for line in catalog(migrated(make_database, "handoffs")) if line.startswith("function ")]
    assert f"pg_notify('{CHANNEL}'," in function, function


# Each drift is one statement an engineer might put in a migration without touching the metadata, and what the
# comparisons must then report.
DRIFTS = [
    ("gateway", "ALTER TABLE users ALTER COLUMN full_name TYPE varchar(200)", "modify_type", "full_name"),
    ("gateway", "ALTER TABLE revoked_access_tokens ALTER COLUMN txid TYPE text", "modify_type", "txid"),
    ("gateway", "ALTER TABLE users ALTER COLUMN is_active DROP DEFAULT", "modify_default", "is_active"),
    ("handoffs", "ALTER TABLE handoffs ALTER COLUMN reason DROP NOT NULL", "modify_nullable", "reason"),
    ("sessions", "DROP INDEX ix_trees_account_category_live", "add_index", "ix_trees_account_category_live"),
    ("analytics", "ALTER TABLE account_watermarks ADD COLUMN note text", "remove_column", "note"),
    ("analytics", "ALTER TABLE outbox ALTER COLUMN topic TYPE varchar(249)", "modify_type", "topic"),
]


@pytest.mark.parametrize(("service", "sql", "kind", "name"), DRIFTS)
def test_comparison_reports_a_drifted_database(
    make_database: Any, service: str, sql: str, kind: str, name: str
) -> None:
    url = migrated(make_database, service)
    on_connection(url, lambda conn: conn.execute(sa.text(sql)))
    diff = differences(url, service_metadata(service))
    assert kind in repr(diff) and name in repr(diff), f"{sql!r} went unnoticed: {diff!r}"


CATALOG_DRIFTS = [
    ("handoffs", "DROP TRIGGER handoff_changes_on_update ON handoffs", "handoff_changes_on_update"),
    ("gateway", "ALTER TABLE users DROP CONSTRAINT ck_users_role", "ck_users_role"),
    (
        "handoffs",
        "DROP INDEX ux_handoffs_live_session; CREATE UNIQUE INDEX ux_handoffs_live_session"
        " ON handoffs (session_id) WHERE status = 'open'",
        "ux_handoffs_live_session",
    ),
]


@pytest.mark.parametrize(("service", "sql", "name"), CATALOG_DRIFTS)
def test_catalog_comparison_reports_a_drifted_database(make_database: Any, service: str, sql: str, name: str) -> None:
    url = migrated(make_database, service)
    before = catalog(url)
    for statement in sql.split(";"):
        on_connection(url, lambda conn, s=statement: conn.execute(sa.text(s)))
    changed = before ^ catalog(url)
    assert changed and all(name in line for line in changed), changed
