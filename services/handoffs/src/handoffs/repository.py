"""Tables of the handoffs service and every query on them; each query is scoped by account."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from handoffs.domain import (
    LIVE_STATUSES,
    Action,
    DueStaleClaim,
    Handoff,
    HandoffNotFound,
    HistoryEntry,
    QueueCounts,
    StalePolicy,
    Status,
)
from rfkit.db import page_of

metadata = sa.MetaData()

# The migrations build these tables; tests/test_schema_matches_metadata.py checks that they agree.
handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("session_id", sa.Uuid, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("priority", sa.Text, nullable=False),
    sa.Column(
        "priority_rank",
        sa.SmallInteger,
        sa.Computed(
            "CASE priority WHEN 'urgent' THEN 4 WHEN 'high' THEN 3 WHEN 'normal' THEN 2 WHEN 'low' THEN 1 ELSE 0 END",
            persisted=True,
        ),
    ),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("last_action", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("requested_by", sa.Uuid, nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_by", sa.Uuid),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.Uuid),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolution_note", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stale_since", sa.DateTime(timezone=True)),
    sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="ck_handoffs_priority"),
    sa.CheckConstraint("status IN ('open', 'claimed', 'resolved')", name="ck_handoffs_status"),
    sa.CheckConstraint(
        "last_action IN ('requested', 'claimed', 'released', 'resolved')", name="ck_handoffs_last_action"
    ),
    sa.CheckConstraint("version >= 1", name="ck_handoffs_version"),
    sa.CheckConstraint("(claimed_by IS NULL) = (claimed_at IS NULL)", name="ck_handoffs_claim_pair"),
    sa.CheckConstraint(
        "status = 'resolved' OR (status = 'claimed') = (claimed_by IS NOT NULL)", name="ck_handoffs_claim_status"
    ),
    sa.CheckConstraint(
        "(status = 'resolved') = (resolved_at IS NOT NULL AND resolved_by IS NOT NULL)", name="ck_handoffs_resolution"
    ),
    # At most one live handoff per session, whatever the concurrency: the database is the arbiter.
    sa.Index(
        "ux_handoffs_live_session", "session_id", unique=True, postgresql_where=sa.text("status IN ('open', 'claimed')")
    ),
    sa.Index("ix_handoffs_queue", "account_id", "status", sa.text("priority_rank DESC"), "requested_at"),
    sa.Index("ix_handoffs_claimed_by", "account_id", "claimed_by"),
    sa.Index("ix_handoffs_session", "session_id"),
    sa.Index(
        "ix_handoffs_unstale_claims",
        "claimed_at",
        postgresql_where=sa.text("status = 'claimed' AND stale_since IS NULL"),
    ),
)

history = sa.Table(
    "handoff_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("handoff_id", sa.Uuid, sa.ForeignKey("handoffs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("actor_id", sa.Uuid),
    sa.Column("actor_type", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
    sa.UniqueConstraint("handoff_id", "version", name="uq_handoff_history_version"),
    sa.CheckConstraint(
        "action IN ('requested', 'claimed', 'released', 'resolved', 'stale')", name="ck_handoff_history_action"
    ),
    sa.CheckConstraint("actor_type IN ('user', 'system')", name="ck_handoff_history_actor_type"),
    # The stats card reads the claims of the last 24 hours of one account.
    sa.Index("ix_handoff_history_account_action_at", "account_id", "action", "at"),
)

completed_sessions = sa.Table(
    "completed_sessions",
    metadata,
    sa.Column("session_id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

stale_policies = sa.Table(
    "stale_policies",
    metadata,
    sa.Column("account_id", sa.Uuid, primary_key=True),
    sa.Column("stale_after_seconds", sa.Integer),
    sa.Column("auto_release", sa.Boolean, nullable=False),
    sa.Column("updated_by", sa.Uuid, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "stale_after_seconds IS NULL OR stale_after_seconds >= 60", name="ck_stale_policies_after"
    ),
)

# The newest step seen per session (from sessions.step-created events, in any order): a claim has had a step
# since it was made exactly when last_step_at >= claimed_at.
session_activity = sa.Table(
    "session_activity",
    metadata,
    sa.Column("session_id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("last_step_at", sa.DateTime(timezone=True), nullable=False),
)

_LIVE = [s.value for s in LIVE_STATUSES]
_LIVE_PREDICATE = "status IN (" + ", ".join(f"'{s}'" for s in _LIVE) + ")"  # as in ux_handoffs_live_session
_QUEUE_ORDER = (handoffs.c.priority_rank.desc(), handoffs.c.requested_at.asc(), handoffs.c.id.asc())
# The handoff's own columns (priority_rank is the database's, for ordering only).
_HANDOFF_COLUMNS = [c for c in handoffs.c if c.name != "priority_rank"]


def _handoff(row: Row[Any]) -> Handoff:
    return Handoff(**row._mapping)


def _maybe(row: Row[Any] | None) -> Handoff | None:
    return _handoff(row) if row is not None else None


class HandoffRepository:
    """Queries over one transaction (or read session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_session(self, *, session_id: UUID) -> None:
        """Serialize escalation and completion of one session until the transaction ends.

        Without it, an escalation and a session.completed event handled at the same moment could each miss
        the other's uncommitted write and leave an open handoff on a completed session.
        """
        await self.session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(str(session_id), 0)))
        )

    # --- sessions as this service knows them from events

    async def is_session_completed(self, *, account_id: UUID, session_id: UUID) -> bool:
        found = await self.session.scalar(
            sa.select(completed_sessions.c.session_id).where(
                completed_sessions.c.account_id == account_id, completed_sessions.c.session_id == session_id
            )
        )
        return found is not None

    async def record_completed_session(
        self, *, account_id: UUID, session_id: UUID, completed_at: datetime, outcome: str
    ) -> None:
        await self.session.execute(
            insert(completed_sessions)
            .values(session_id=session_id, account_id=account_id, completed_at=completed_at, outcome=outcome)
            .on_conflict_do_nothing()
        )

    # --- handoffs

    async def insert_live(self, *, values: dict[str, Any]) -> Handoff | None:
        """Insert a new open handoff unless its session already has a live one (then None)."""
        stmt = (
            insert(handoffs)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[handoffs.c.session_id],
                # Literal SQL, not bind parameters: with parameters, a generic prepared plan cannot prove that
                # the partial index matches and PostgreSQL refuses the ON CONFLICT inference.
                index_where=sa.text(_LIVE_PREDICATE),
            )
            .returning(*_HANDOFF_COLUMNS)
        )
        return _maybe((await self.session.execute(stmt)).first())

    async def live_for_session(
        self, *, account_id: UUID, session_id: UUID, for_update: bool = False
    ) -> Handoff | None:
        stmt = sa.select(*_HANDOFF_COLUMNS).where(
            handoffs.c.account_id == account_id,
            handoffs.c.session_id == session_id,
            handoffs.c.status.in_(_LIVE),
        )
        if for_update:
            stmt = stmt.with_for_update()
        return _maybe((await self.session.execute(stmt)).first())

    async def get(self, *, account_id: UUID, handoff_id: UUID, for_update: bool = False) -> Handoff:
        """The handoff, or HandoffNotFound (also when it belongs to another account)."""
        stmt = sa.select(*_HANDOFF_COLUMNS).where(handoffs.c.id == handoff_id, handoffs.c.account_id == account_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        if row is None:
            raise HandoffNotFound()
        return _handoff(row)

    async def claim_if_open(
        self, *, account_id: UUID, handoff_id: UUID, user_id: UUID, at: datetime
    ) -> Handoff | None:
        """The claim race in one statement: exactly one of any number of concurrent claimers gets the row back.

        PostgreSQL re-checks `status = 'open'` on the latest row version after waiting for a concurrent
        claimer's lock, so the losers match nothing (no read-then-write window).
        """
        stmt = (
            sa.update(handoffs)
            .where(
                handoffs.c.id == handoff_id,
                handoffs.c.account_id == account_id,
                handoffs.c.status == Status.OPEN.value,
            )
            .values(
                status=Status.CLAIMED.value,
                last_action=Action.CLAIMED.value,
                claimed_by=user_id,
                claimed_at=at,
                stale_since=None,
                version=handoffs.c.version + 1,
                updated_at=at,
            )
            .returning(*_HANDOFF_COLUMNS)
        )
        return _maybe((await self.session.execute(stmt)).first())

    async def release(self, *, account_id: UUID, handoff_id: UUID, at: datetime) -> Handoff:
        """Back to open (the caller holds the row lock and checked the rules)."""
        return await self._move(
            account_id, handoff_id, Status.OPEN, Action.RELEASED, at=at, claimed_by=None, claimed_at=None
        )

    async def resolve(
        self, *, account_id: UUID, handoff_id: UUID, resolved_by: UUID, at: datetime, note: str | None
    ) -> Handoff:
        """Resolved for good; the last claim (if any) is kept, analytics measure from it."""
        return await self._move(
            account_id, handoff_id, Status.RESOLVED, Action.RESOLVED, at=at,
            resolved_by=resolved_by, resolved_at=at, resolution_note=note,
        )

    async def mark_stale(self, *, account_id: UUID, handoff_id: UUID, stale_since: datetime, at: datetime) -> Handoff:
        """The current claim is stale from `stale_since` (the caller holds the row lock of a due claim)."""
        return await self._change(account_id, handoff_id, stale_since=stale_since, updated_at=at)

    async def due_stale_claims_system_wide(self, *, now: datetime, limit: int) -> list[DueStaleClaim]:
        """Claims of every account past claimed_at + stale_after_seconds with no step since claimed_at, locked.

        SKIP LOCKED: another replica's detector (or a user's release) holding a row makes this one pass it by,
        and once that transaction commits the claim no longer matches (stale_since is set, or it is not claimed):
        each claim is marked by exactly one transaction.
        """
        seconds = sa.func.make_interval(0, 0, 0, 0, 0, 0, stale_policies.c.stale_after_seconds, type_=sa.Interval)
        deadline = handoffs.c.claimed_at + seconds
        stmt = (
            sa.select(handoffs.c.id, handoffs.c.account_id, deadline.label("deadline"), stale_policies.c.auto_release)
            .select_from(
                handoffs.join(stale_policies, stale_policies.c.account_id == handoffs.c.account_id).outerjoin(
                    session_activity,
                    sa.and_(
                        session_activity.c.session_id == handoffs.c.session_id,
                        session_activity.c.account_id == handoffs.c.account_id,
                    ),
                )
            )
            .where(
                # Literal, as the partial index ix_handoffs_unstale_claims says it, so the planner can use it.
                sa.text("handoffs.status = 'claimed' AND handoffs.stale_since IS NULL"),
                stale_policies.c.stale_after_seconds.is_not(None),
                deadline <= now,
                sa.or_(
                    session_activity.c.last_step_at.is_(None),
                    session_activity.c.last_step_at < handoffs.c.claimed_at,
                ),
            )
            .order_by(deadline)
            .limit(limit)
            .with_for_update(of=handoffs, skip_locked=True)
        )
        return [
            DueStaleClaim(handoff_id=r.id, account_id=r.account_id, deadline=r.deadline, auto_release=r.auto_release)
            for r in (await self.session.execute(stmt)).all()
        ]

    # --- stale policy

    async def stale_policy(self, *, account_id: UUID) -> StalePolicy:
        row = (
            await self.session.execute(
                sa.select(stale_policies.c.stale_after_seconds, stale_policies.c.auto_release).where(
                    stale_policies.c.account_id == account_id
                )
            )
        ).first()
        return StalePolicy(**row._mapping) if row is not None else StalePolicy()

    async def put_stale_policy(
        self, *, account_id: UUID, policy: StalePolicy, updated_by: UUID, at: datetime
    ) -> StalePolicy:
        values = {
            "stale_after_seconds": policy.stale_after_seconds,
            "auto_release": policy.auto_release,
            "updated_by": updated_by,
            "updated_at": at,
        }
        await self.session.execute(
            insert(stale_policies)
            .values(account_id=account_id, **values)
            .on_conflict_do_update(index_elements=[stale_policies.c.account_id], set_=values)
        )
        return policy

    # --- steps on sessions, as this service knows them from events

    async def record_steps(self, *, latest: dict[tuple[UUID, UUID], datetime]) -> None:
        """Remember the newest step time per (account, session); an older or repeated one changes nothing."""
        if not latest:
            return
        stmt = insert(session_activity).values(
            [
                {"account_id": account_id, "session_id": session_id, "last_step_at": at}
                # Sorted: two batches upserting the same sessions wait on each other instead of deadlocking.
                for (account_id, session_id), at in sorted(latest.items(), key=lambda kv: kv[0][1])
            ]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[session_activity.c.session_id],
                set_={"last_step_at": sa.func.greatest(session_activity.c.last_step_at, stmt.excluded.last_step_at)},
                # A session id is global; the account must agree (a forged event cannot touch another account's).
                where=session_activity.c.account_id == stmt.excluded.account_id,
            )
        )

    async def _move(
        self, account_id: UUID, handoff_id: UUID, status: Status, action: Action, *, at: datetime, **values: Any
    ) -> Handoff:
        """A move to another status: the action is recorded on the row and any stale mark ends with it."""
        return await self._change(
            account_id,
            handoff_id,
            status=status.value,
            last_action=action.value,
            stale_since=None,
            updated_at=at,
            **values,
        )

    async def _change(self, account_id: UUID, handoff_id: UUID, **values: Any) -> Handoff:
        stmt = (
            sa.update(handoffs)
            .where(handoffs.c.id == handoff_id, handoffs.c.account_id == account_id)
            .values(version=handoffs.c.version + 1, **values)
            .returning(*_HANDOFF_COLUMNS)
        )
        row = (await self.session.execute(stmt)).first()
        if row is None:
            raise HandoffNotFound()
        return _handoff(row)

    # --- history

    async def add_history(
        self,
        *,
        handoff: Handoff,
        action: Action,
        actor_id: UUID | None,
        at: datetime,
        actor_type: str = "user",
        note: str | None = None,
    ) -> None:
        """Record the change that gave `handoff` (as just written) its version."""
        await self.session.execute(
            sa.insert(history).values(
                handoff_id=handoff.id,
                account_id=handoff.account_id,
                version=handoff.version,
                action=action.value,
                actor_id=actor_id,
                actor_type=actor_type,
                at=at,
                note=note,
            )
        )

    async def history_of(self, *, account_id: UUID, handoff_id: UUID) -> list[HistoryEntry]:
        stmt = (
            sa.select(
                history.c.action,
                history.c.actor_id,
                history.c.actor_type,
                history.c.at,
                history.c.version,
                history.c.note,
            )
            .where(history.c.account_id == account_id, history.c.handoff_id == handoff_id)
            .order_by(history.c.version)
        )
        return [HistoryEntry(**r._mapping) for r in (await self.session.execute(stmt)).all()]

    # --- the queue

    async def page(
        self,
        *,
        account_id: UUID,
        status: str | None,
        claimed_by: UUID | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Handoff], int]:
        """One page of the queue, most urgent first, then oldest first; and the total that matches."""
        conditions: list[sa.ColumnElement[bool]] = [handoffs.c.account_id == account_id]
        if status == Action.RELEASED.value:
            # "released" is an action, not a state: open handoffs whose latest change was a release.
            conditions += [handoffs.c.status == Status.OPEN.value, handoffs.c.last_action == Action.RELEASED.value]
        elif status is not None:
            conditions.append(handoffs.c.status == status)
        if claimed_by is not None:
            conditions.append(handoffs.c.claimed_by == claimed_by)
        rows, total = await page_of(
            self.session, handoffs, conditions, columns=_HANDOFF_COLUMNS, order_by=_QUEUE_ORDER, limit=limit,
            offset=offset,
        )
        return [_handoff(r) for r in rows], total

    async def stats(self, *, account_id: UUID, now: datetime) -> QueueCounts:
        """Counts, the oldest open request time, and the median wait of the claims made in the last 24 h."""
        counts = (
            await self.session.execute(
                sa.select(
                    sa.func.count().filter(handoffs.c.status == Status.OPEN.value).label("open"),
                    sa.func.count().filter(handoffs.c.status == Status.CLAIMED.value).label("claimed"),
                    sa.func.min(handoffs.c.requested_at)
                    .filter(handoffs.c.status == Status.OPEN.value)
                    .label("oldest_open_requested_at"),
                ).where(handoffs.c.account_id == account_id, handoffs.c.status.in_(_LIVE))
            )
        ).one()
        # Every claim counts, re-claims after a release included: each is a wait the queue imposed.
        wait = sa.func.extract("epoch", history.c.at - handoffs.c.requested_at)
        median = await self.session.scalar(
            sa.select(sa.func.percentile_cont(0.5).within_group(wait))
            .select_from(history.join(handoffs, handoffs.c.id == history.c.handoff_id))
            .where(
                history.c.account_id == account_id,
                history.c.action == Action.CLAIMED.value,
                history.c.at >= now - timedelta(hours=24),
                history.c.at <= now,
            )
        )
        return QueueCounts(
            open=int(counts.open),
            claimed=int(counts.claimed),
            oldest_open_requested_at=counts.oldest_open_requested_at,
            median_wait_to_claim_seconds=float(median) if median is not None else None,
        )
