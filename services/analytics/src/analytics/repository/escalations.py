"""The read model's writes (set-based, one transaction per batch of events) and the section 5 metric query."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.domain import DeltaStats, HandoffChange, SessionTree, StepTime, delta_stats
from analytics.repository.clock import SCHEDULE_VERSION, WALL, ClockState, n_pending, over_clock_columns
from analytics.repository.tables import READ_MODEL_TABLES
from rfkit.db import Database

# Two-key advisory locks (namespace, hashtext(session_id)): the namespace keeps them apart from the
# bigint-keyed migration lock and from any other user of advisory locks in this database.
LOCK_NAMESPACE = 0x5246_0A11

# Sorted so that two transactions wanting overlapping sessions take the locks in one order (no deadlock).
_LOCK_SESSIONS = sa.text(
    """
    SELECT count(pg_advisory_xact_lock(:ns, t.h)) FROM (
        SELECT DISTINCT hashtext(s::text) AS h FROM unnest(CAST(:sessions AS uuid[])) AS s ORDER BY h
    ) AS t
    """
)

_INSERT_STEPS = sa.text(
    """
    INSERT INTO steps (session_id, created_at, step_id, account_id, actor_type)
    SELECT * FROM unnest(
        CAST(:session_id AS uuid[]), CAST(:created_at AS timestamptz[]),
        CAST(:step_id AS uuid[]), CAST(:account_id AS uuid[]), CAST(:actor_type AS text[]))
    ON CONFLICT DO NOTHING
    """
)

# The columns a claim with a higher version replaces: the claim itself and the first actions found from its claimed_at.
_NEWER_CLAIM = "EXCLUDED.claim_version > COALESCE(h.claim_version, 0)"
_CLAIMED_COLUMNS = ",\n        ".join(
    f"{column} = CASE WHEN {_NEWER_CLAIM} THEN EXCLUDED.{column} ELSE h.{column} END"
    for column in ("claim_version", "claimed_at", "claimed_by", "first_action_at", "first_human_at", "first_ai_at")
)

# A claim with a higher version replaces claimed_at and brings its first actions along (any kind, human, ai),
# found with one range scan of the session's steps key from claimed_at; a release only raises release_version;
# a request only fills requested_at and priority. Stale and duplicate versions write nothing. A new handoff picks up
# its session's tree when the session-started event came first (else _COPY_TREES brings it later).
_UPSERT_HANDOFFS = sa.text(
    f"""
    INSERT INTO handoffs AS h
        (handoff_id, account_id, session_id, claim_version, claimed_at, release_version, requested_at,
         first_action_at, first_human_at, first_ai_at, claimed_by, priority, tree_id, tree_category)
    SELECT v.handoff_id, v.account_id, v.session_id, v.claim_version, v.claimed_at, v.release_version,
           v.requested_at, f.first_action_at, f.first_human_at, f.first_ai_at, v.claimed_by, v.priority,
           t.tree_id, t.tree_category
    FROM unnest(
        CAST(:handoff_id AS uuid[]), CAST(:account_id AS uuid[]), CAST(:session_id AS uuid[]),
        CAST(:claim_version AS bigint[]), CAST(:claimed_at AS timestamptz[]), CAST(:release_version AS bigint[]),
        CAST(:requested_at AS timestamptz[]), CAST(:claimed_by AS uuid[]), CAST(:priority AS text[])
    ) AS v(handoff_id, account_id, session_id, claim_version, claimed_at, release_version, requested_at,
           claimed_by, priority)
    CROSS JOIN LATERAL (
        SELECT min(s.created_at) AS first_action_at,
               min(s.created_at) FILTER (WHERE s.actor_type = 'human') AS first_human_at,
               min(s.created_at) FILTER (WHERE s.actor_type = 'ai') AS first_ai_at
        FROM steps AS s
        WHERE s.session_id = v.session_id AND s.created_at >= v.claimed_at AND s.account_id = v.account_id
    ) AS f
    LEFT JOIN session_trees AS t ON t.account_id = v.account_id AND t.session_id = v.session_id
    ON CONFLICT (handoff_id) DO UPDATE SET
        {_CLAIMED_COLUMNS},
        release_version = GREATEST(h.release_version, EXCLUDED.release_version),
        requested_at = COALESCE(h.requested_at, EXCLUDED.requested_at),
        priority = COALESCE(h.priority, EXCLUDED.priority),
        -- A new claim moves claimed_at and the first actions: its business seconds are priced again (0: none).
        business_version = CASE WHEN {_NEWER_CLAIM} THEN 0 ELSE h.business_version END,
        tree_id = COALESCE(h.tree_id, EXCLUDED.tree_id),
        tree_category = CASE WHEN h.tree_id IS NULL THEN EXCLUDED.tree_category ELSE h.tree_category END,
        updated_at = now()
    WHERE {_NEWER_CLAIM}
       OR EXCLUDED.release_version > COALESCE(h.release_version, 0)
       OR (h.requested_at IS NULL AND EXCLUDED.requested_at IS NOT NULL)
       OR (h.priority IS NULL AND EXCLUDED.priority IS NOT NULL)
    """
)

# New steps can only move a claim's first actions earlier: each step finds its session's claims through
# ix_handoffs_session (LATERAL, so the cost follows the batch, never the table's size), and each handoff
# is updated once with the earliest of its new steps (of any kind, and per actor type; LEAST skips NULLs).
_ADVANCE_FIRST_ACTIONS = sa.text(
    """
    UPDATE handoffs AS h SET
        first_action_at = LEAST(h.first_action_at, x.first_action_at),
        first_human_at = LEAST(h.first_human_at, x.first_human_at),
        first_ai_at = LEAST(h.first_ai_at, x.first_ai_at),
        business_version = 0,  -- a first action moved: priced again
        updated_at = now()
    FROM (
        SELECT c.handoff_id, min(s.created_at) AS first_action_at,
               min(s.created_at) FILTER (WHERE s.actor_type = 'human') AS first_human_at,
               min(s.created_at) FILTER (WHERE s.actor_type = 'ai') AS first_ai_at
        FROM unnest(
            CAST(:session_id AS uuid[]), CAST(:account_id AS uuid[]), CAST(:created_at AS timestamptz[]),
            CAST(:actor_type AS text[])
        ) AS s(session_id, account_id, created_at, actor_type)
        CROSS JOIN LATERAL (
            SELECT c.handoff_id FROM handoffs AS c
            WHERE c.session_id = s.session_id AND c.account_id = s.account_id AND c.claimed_at <= s.created_at
            OFFSET 0  -- keeps the subquery a per-step index probe (not pulled up into a join of whole tables)
        ) AS c
        GROUP BY c.handoff_id
    ) AS x
    WHERE h.handoff_id = x.handoff_id
      AND (h.first_action_at IS NULL OR x.first_action_at < h.first_action_at
           OR x.first_human_at < COALESCE(h.first_human_at, 'infinity')
           OR x.first_ai_at < COALESCE(h.first_ai_at, 'infinity'))
    """
)

# A session starts once: a redelivered session-started event finds its row and writes nothing.
_INSERT_SESSION_TREES = sa.text(
    """
    INSERT INTO session_trees (session_id, account_id, tree_id, tree_title, tree_category, started_at)
    SELECT * FROM unnest(
        CAST(:session_id AS uuid[]), CAST(:account_id AS uuid[]), CAST(:tree_id AS uuid[]),
        CAST(:tree_title AS text[]), CAST(:tree_category AS text[]), CAST(:started_at AS timestamptz[]))
    ON CONFLICT (account_id, session_id) DO NOTHING
    """
)

# The sessions' trees onto their handoffs stored before the session-started event (handoffs stored after it took
# theirs on insert). From session_trees, not the event: the first session-started event of a session wins in both.
# A handoff that has its tree is skipped, so a redelivered event writes nothing.
_COPY_TREES = sa.text(
    """
    UPDATE handoffs AS h SET tree_id = t.tree_id, tree_category = t.tree_category, updated_at = now()
    FROM unnest(CAST(:session_id AS uuid[]), CAST(:account_id AS uuid[])) AS v(session_id, account_id)
    JOIN session_trees AS t ON t.account_id = v.account_id AND t.session_id = v.session_id
    WHERE h.session_id = v.session_id AND h.account_id = v.account_id AND h.tree_id IS NULL
    """
)

_RAISE_WATERMARKS = sa.text(
    """
    INSERT INTO account_watermarks AS w (account_id, data_as_of)
    SELECT a, t FROM unnest(CAST(:account_ids AS uuid[]), CAST(:times AS timestamptz[])) AS w(a, t)
    ORDER BY a  -- one row-lock order across concurrent transactions (no deadlock)
    ON CONFLICT (account_id) DO UPDATE SET data_as_of = EXCLUDED.data_as_of
    WHERE EXCLUDED.data_as_of > w.data_as_of
    """
)

# The deltas leave PostgreSQL as they are scanned, in its binary array form (`array_send`: no text, no Python object
# per value), and the service computes count, avg and the percentiles from them (`domain.delta_stats`: PostgreSQL's
# count, avg over the same rows in the same order, and percentile_cont, to the last bit; the percentiles selected
# instead of sorted). Three percentile_cont sorts were most of this statement's time, on the one database every
# replica shares. NULL deltas (claims without an action of that kind) are left out of the arrays, as the aggregates
# skip them; over none the array is NULL. The claims are read from ix_handoffs_account_claimed alone, the exclusions
# from ix_handoffs_account_unclaimed_requested.
# Plain asyncpg text ($1 = account, $2/$3 = window): the hot read runs on `Database.fetchrow`.
_STATS = """
    SELECT c.*, x.*, (SELECT data_as_of FROM account_watermarks WHERE account_id = $1) AS data_as_of/*version*/
    FROM (
        SELECT count(*) AS n_claimed,/*pending*/
               array_send(array_agg(delta_s) FILTER (WHERE delta_s IS NOT NULL)) AS deltas,
               array_send(array_agg(human_delta_s) FILTER (WHERE human_delta_s IS NOT NULL)) AS human_deltas,
               array_send(array_agg(ai_delta_s) FILTER (WHERE ai_delta_s IS NOT NULL)) AS ai_deltas
        FROM handoffs
        WHERE account_id = $1 AND effective_claimed_at IS NOT NULL
          AND effective_claimed_at >= $2 AND effective_claimed_at <= $3
    ) AS c CROSS JOIN (
        -- No current claim: never claimed, or released after its newest claim. Released: a claim of it was
        -- seen (without a current claim, a release newer than that claim was seen too).
        SELECT count(*) AS n_unclaimed, count(claim_version) AS n_released
        FROM handoffs
        WHERE account_id = $1 AND effective_claimed_at IS NULL AND requested_at IS NOT NULL
          AND requested_at >= $2 AND requested_at <= $3
    ) AS x
"""
ESCALATION_STATS = _STATS.replace("/*version*/", "").replace("/*pending*/", "")
# clock=business: the same over the business columns, plus what `for_clock` adds to the other answers (the schedule
# version and `n_pending`), the count taken in the same scan of the window where `for_clock` would scan it once
# more: this is the answer with the 10 ms goal.
ESCALATION_STATS_BUSINESS = (
    over_clock_columns(_STATS, "business")
    .replace("/*version*/", f", {SCHEDULE_VERSION} AS schedule_version")
    .replace("/*pending*/", f" {n_pending(SCHEDULE_VERSION, 'handoffs')},")
)


# PostgreSQL's binary array (array_send): ndim, has-nulls flag, element type oid, then (size, lower bound) per
# dimension, then each element as its byte length and big-endian value.
_FLOAT8_OID = 701
_FLOAT8_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f8")])


def float8_array(sent: bytes | None) -> npt.NDArray[np.float64]:
    """The values of a one-dimensional float8[] without NULLs as `array_send` wrote it (NULL: none)."""
    if sent is None:
        return np.empty(0)
    ndim, has_nulls, oid = np.frombuffer(sent, dtype=">i4", count=3)
    if ndim == 0:
        return np.empty(0)
    size = int.from_bytes(sent[12:16], "big")
    if ndim != 1 or has_nulls or oid != _FLOAT8_OID or len(sent) != 20 + _FLOAT8_ELEMENT.itemsize * size:
        raise ValueError(f"not a float8[] of one dimension without NULLs: ndim={ndim} nulls={has_nulls} oid={oid}")
    return np.frombuffer(sent, dtype=_FLOAT8_ELEMENT, offset=20)["value"].astype(np.float64)


def _arrays(rows: Collection[Any], *attributes: str) -> dict[str, list[Any]]:
    """A set-based statement's array parameters: per attribute named (by default, every field of the rows' dataclass;
    `rows` is not empty), its values over the rows, all in one order, which the statement's `unnest` lines up again."""
    names = attributes or [f.name for f in fields(next(iter(rows)))]
    return {name: [getattr(row, name) for row in rows] for name in names}


@dataclass(frozen=True)
class EscalationStats:
    n_claimed: int
    n_with_action: int
    avg_s: float | None
    median_s: float | None
    p95_s: float | None
    data_as_of: datetime | None
    by_actor: dict[str, DeltaStats]  # human, ai
    n_unclaimed: int
    n_released: int
    clock_state: ClockState = WALL


class EscalationRepository:
    """The read model's write side over the unit of work's session.

    Its batch methods take events of many accounts at once (a consumer batch is not one account's): every row
    written carries its own account_id, and every join matches on it, so no account's row meets another's.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_sessions(self, *, session_ids: Collection[UUID]) -> None:
        """Serialize, until commit, with other transactions (other replicas) applying events of these sessions."""
        if session_ids:
            await self._session.execute(_LOCK_SESSIONS, {"ns": LOCK_NAMESPACE, "sessions": list(session_ids)})

    async def insert_steps(self, *, steps: list[StepTime]) -> None:
        if steps:
            await self._session.execute(_INSERT_STEPS, _arrays(steps))

    async def upsert_handoffs(self, *, changes: Collection[HandoffChange]) -> None:
        if changes:
            await self._session.execute(_UPSERT_HANDOFFS, _arrays(changes))

    async def advance_first_actions(self, *, steps: list[StepTime]) -> None:
        if steps:
            await self._session.execute(
                _ADVANCE_FIRST_ACTIONS, _arrays(steps, "session_id", "account_id", "created_at", "actor_type")
            )

    async def insert_session_trees(self, *, trees: Collection[SessionTree]) -> None:
        if trees:
            await self._session.execute(_INSERT_SESSION_TREES, _arrays(trees))
            await self._session.execute(_COPY_TREES, _arrays(trees, "session_id", "account_id"))

    async def raise_watermarks(self, *, watermarks: dict[UUID, datetime]) -> None:
        if watermarks:
            await self._session.execute(
                _RAISE_WATERMARKS, {"account_ids": list(watermarks), "times": list(watermarks.values())}
            )

    async def clear_all_accounts(self, *, consumer: str) -> None:
        """System-wide: empty the read model (the rebuild's first step), and any ledger rows an earlier version left."""
        await self._session.execute(sa.text(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}"))
        await self._session.execute(sa.text("DELETE FROM processed_events WHERE consumer = :c"), {"c": consumer})


class EscalationQueries:
    """The read model's read side: each answer is one statement on `Database.fetchrow` (its own snapshot, no
    transaction round trips; the hot path measured in bench/)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def escalation_stats(
        self, *, account_id: UUID, start: datetime, end: datetime, clock: str = "wall"
    ) -> EscalationStats:
        """The metric over one account's claims with start <= claimed_at <= end (one statement, its own snapshot),
        its deltas in wall or stored business seconds."""
        sql = ESCALATION_STATS_BUSINESS if clock == "business" else ESCALATION_STATS
        row = await self._db.fetchrow(sql, account_id, start, end)
        assert row is not None  # an aggregate without GROUP BY always gives one row
        overall = delta_stats(float8_array(row["deltas"]))
        return EscalationStats(
            n_claimed=row["n_claimed"],
            **asdict(overall),
            data_as_of=row["data_as_of"],
            by_actor={actor: delta_stats(float8_array(row[f"{actor}_deltas"])) for actor in ("human", "ai")},
            n_unclaimed=row["n_unclaimed"],
            n_released=row["n_released"],
            clock_state=ClockState.of(row, clock),
        )
