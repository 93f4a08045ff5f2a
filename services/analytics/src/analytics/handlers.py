"""Use cases: apply a batch of events to the read model; answer the escalation metric and its insights."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from analytics.business_hours import BusinessClock, Schedule, parse_schedule, price_spans
from analytics.domain import (
    BusinessHoursNotSet,
    BusinessHoursRequired,
    DeltaStats,
    GroupStats,
    breakdown_order,
    csv_document,
    delta_stats,
    fold,
    group_stats,
    local_days,
    window,
    zone,
)
from analytics.repository import (
    Breakdown,
    BusinessSecondsQueries,
    ClaimRowQueries,
    ClockState,
    EscalationQueries,
    EscalationStats,
    HandoffLine,
    HandoffLines,
    InsightQueries,
    Series,
    StoredSchedule,
)
from analytics.uow import AnalyticsUnitOfWork
from rf_contracts import Event
from rf_contracts.api.analytics import (
    DRILL_DOWN_FIELDS,
    HISTOGRAM_BOUNDS_SECONDS,
    METRIC_DEFINITION,
    BreakdownBy,
    BreakdownGroup,
    ByFirstActor,
    DrillDownOrder,
    EscalationBreakdownRead,
    EscalationHandoff,
    EscalationHandoffPage,
    EscalationMetricRead,
    EscalationSeriesRead,
    Excluded,
    FirstActorStats,
    Histogram,
    Period,
    SeriesDay,
)
from rf_contracts.api.business_hours import BusinessHoursRead, Clock, Week
from rfkit.db import Database


async def apply_events(uow: AnalyticsUnitOfWork, events: list[Event]) -> None:
    """Fold new events (any order, any mix of topics) into the read model, set-based, in the kit's transaction."""
    changes = fold(events)
    repo = uow.escalations
    # Taken first and held to commit: a step and a claim of one session applied by two replicas at once
    # would otherwise each miss the other's uncommitted row and lose their join.
    await repo.lock_sessions(session_ids=changes.sessions())
    await repo.insert_steps(steps=changes.steps)
    # After the steps: a claim's first-action probe sees this batch's steps too.
    await repo.upsert_handoffs(changes=list(changes.handoffs.values()))
    await repo.advance_first_actions(steps=changes.steps)
    # Also copies each tree onto the session's handoffs stored so far (those stored later pick it up on insert).
    await repo.insert_session_trees(trees=list(changes.trees.values()))
    await repo.raise_watermarks(watermarks=changes.watermarks)


@dataclass(frozen=True, kw_only=True)
class _WindowQuery:
    """What every statistics question names: whose handoffs, over which period up to `now`, by which clock."""

    account_id: UUID
    period: Period
    now: datetime
    clock: Clock = "wall"


@dataclass(frozen=True, kw_only=True)
class GetEscalationMetric(_WindowQuery):
    """The section 5 answer of one account over the period ending at `now`."""


def _acted(s: DeltaStats | GroupStats | EscalationStats) -> dict[str, Any]:
    """The statistics of the handoffs with a first action, as the answers name them (overall and per first actor)."""
    return {
        "n_handoffs_with_action": s.n_with_action,
        "avg_seconds": s.avg_s,
        "median_seconds": s.median_s,
        "p95_seconds": s.p95_s,
    }


def _actor(stats: DeltaStats) -> FirstActorStats:
    return FirstActorStats(**_acted(stats))


def _statistics(s: GroupStats | EscalationStats) -> dict[str, Any]:
    """Section 5's statistics fields, as every answer (and group, and day) carries them."""
    return {"n_handoffs_claimed": s.n_claimed, **_acted(s)}


def _answered(
    query: _WindowQuery, data_as_of: datetime | None, version: int | None
) -> dict[str, Any]:
    """What every statistics answer says of itself: the period and clock asked, how fresh, which schedule priced it."""
    return {"period": query.period, "data_as_of": data_as_of, "clock": query.clock, "schedule_version": version}


def _windowed(
    query: _WindowQuery,
    start: datetime,
    end: datetime,
    data_as_of: datetime | None,
    version: int | None,
) -> dict[str, Any]:
    """`_answered` and the window the answer covers."""
    return {"window_start": start, "window_end": end, **_answered(query, data_as_of, version)}


async def get_escalation_metric(query: GetEscalationMetric, *, db: Database) -> EscalationMetricRead:
    """The metric of docs/contract.md#the-escalation-metric for one account and period, read from the read model
    (clock=business: the stored business seconds, or the window priced now while they are not caught up)."""
    start, end = window(query.period, query.now)
    stats = await EscalationQueries(db).escalation_stats(
        account_id=query.account_id, start=start, end=end, clock=query.clock
    )
    version = _schedule_version(stats.clock_state, query.clock)
    if stats.clock_state.n_pending:
        stats, version = await _priced_stats(query, stats, db=db)
    return EscalationMetricRead(
        **_windowed(query, start, end, stats.data_as_of, version),
        **_statistics(stats),
        by_first_actor=ByFirstActor(human=_actor(stats.by_actor["human"]), ai=_actor(stats.by_actor["ai"])),
        excluded=Excluded(unclaimed=stats.n_unclaimed, released=stats.n_released),
        metric_definition=METRIC_DEFINITION,
    )


# ---- Section 7: breakdown, drill-down, series ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GetBreakdown(_WindowQuery):
    """The section 5 statistics per tree, category, priority or claimer."""

    by: BreakdownBy


async def get_breakdown(query: GetBreakdown, *, db: Database) -> EscalationBreakdownRead:
    start, end = window(query.period, query.now)
    found = await InsightQueries(db).breakdown(
        account_id=query.account_id, start=start, end=end, by=query.by, clock=query.clock
    )
    version = _schedule_version(found.clock_state, query.clock)
    if found.clock_state.n_pending:
        found, version = await _priced_breakdown(query, db=db)
    return EscalationBreakdownRead(
        **_windowed(query, start, end, found.data_as_of, version),
        by=query.by,
        groups=[BreakdownGroup(key=g.key, label=g.label, **_statistics(g)) for g in breakdown_order(found.groups)],
    )


@dataclass(frozen=True, kw_only=True)
class ListHandoffs(_WindowQuery):
    """The counted handoffs, slowest or newest first, one page (or every row)."""

    order: DrillDownOrder
    limit: int = 50
    offset: int = 0


_LINE_FIELDS = tuple(f.name for f in fields(HandoffLine))


# A drill-down line's columns that the answer's item carries under the same name (the query yields only
# human|ai|NULL as first_actor_type); its two durations are renamed.
_LINE_COLUMNS = (
    "handoff_id",
    "session_id",
    "tree_id",
    "priority",
    "claimed_by",
    "claimed_at",
    "first_action_at",
    "first_actor_type",
)


def _item(line: HandoffLine) -> EscalationHandoff:
    return EscalationHandoff(
        **{c: getattr(line, c) for c in _LINE_COLUMNS}, delta_seconds=line.delta_s, waiting_seconds=line.waiting_s
    )


async def list_handoffs(query: ListHandoffs, *, db: Database) -> EscalationHandoffPage:
    start, end = window(query.period, query.now)
    if query.clock == "business" and query.order == "slowest":
        found, version = await _business_slowest(query, db=db)
    else:
        found = await InsightQueries(db).handoff_page(
            account_id=query.account_id,
            start=start,
            end=end,
            now=query.now,
            order=query.order,
            limit=query.limit,
            offset=query.offset,
            clock=query.clock,
        )
        version = _schedule_version(found.clock_state, query.clock)
        # clock=business: the open claims' waiting time runs to now, so it is priced here (the page's few rows).
        if query.clock == "business" and (
            found.clock_state.n_pending or any(line.delta_s is None for line in found.items)
        ):
            waiting = await _waiting_clock(query, version, db=db) if found.clock_state.n_pending == 0 else None
            if waiting is None:
                found, version = await _priced_page(query, db=db)
            else:
                items = [waiting.price(line) if line.delta_s is None else line for line in found.items]
                found = HandoffLines(items, found.total)
    return EscalationHandoffPage(
        items=[_item(line) for line in found.items],
        total=found.total,
        limit=query.limit,
        offset=query.offset,
        clock=query.clock,
        schedule_version=version,
    )


async def _business_slowest(query: ListHandoffs, *, db: Database) -> tuple[HandoffLines, int | None]:
    """`slowest` with the business clock: the stored deltas' top rows merged with the open claims, whose business
    waiting time is priced now (every open claim's, from two plain arrays; whole rows only for those on the page)."""
    start, end = window(query.period, query.now)
    queries = BusinessSecondsQueries(db)
    wanted = query.offset + query.limit
    found = await queries.slowest_candidates(account_id=query.account_id, start=start, end=end, acted=wanted)
    version = _schedule_version(found.clock_state, query.clock)
    if found.clock_state.n_pending:
        return await _priced_page(query, db=db)
    ranked: list[tuple[float, UUID, HandoffLine | None]] = [
        (-(line.delta_s or 0.0), line.handoff_id, line) for line in found.acted
    ]
    if found.open_ids:
        waiting = await _waiting_clock(query, version, db=db)
        if waiting is None:
            return await _priced_page(query, db=db)
        at = waiting.clock.at_epoch
        now_open = at(waiting.now_s)
        for handoff_id, claimed_s in zip(found.open_ids, found.open_claimed_s, strict=True):
            ranked.append((-max(0.0, now_open - at(claimed_s)), handoff_id, None))
    ranked.sort(key=lambda r: (r[0], r[1]))
    page = ranked[query.offset : query.offset + query.limit]
    waits = {handoff_id: -key for key, handoff_id, line in page if line is None}
    opened = (
        {
            line.handoff_id: replace(line, waiting_s=waits[line.handoff_id])
            for line in await queries.open_lines(account_id=query.account_id, handoff_ids=sorted(waits))
        }
        if waits
        else {}
    )
    return HandoffLines([line or opened[i] for _, i, line in page], found.total), version


def _slowest(line: HandoffLine) -> tuple[float, UUID]:
    """Section 7's `slowest`: delta (or waiting time) descending, then handoff_id ascending."""
    value = line.delta_s if line.delta_s is not None else line.waiting_s
    return -(value or 0.0), line.handoff_id


async def export_handoffs(query: ListHandoffs, *, db: Database) -> AsyncIterator[str] | AsyncIterator[bytes]:
    """Every counted handoff (paging ignored) as CSV, produced while it is sent. Awaited before the answer
    starts, so that a refusal (clock=business without a schedule) is still an error answer."""
    start, end = window(query.period, query.now)
    if query.clock == "wall":
        # The header, then the rows' lines as PostgreSQL's COPY writes them (stored cells), passed on as they come.
        return InsightQueries(db).handoffs_csv(
            account_id=query.account_id, start=start, end=end, now=query.now, order=query.order
        )
    # clock=business: the open claims' waiting time runs to now in open hours, priced here row by row.
    opened: list[HandoffLine] = []
    state = await BusinessSecondsQueries(db).state(account_id=query.account_id, start=start, end=end)
    version = _schedule_version(state, query.clock)
    waiting = await _waiting_clock(query, version, db=db) if state.n_pending == 0 else None
    if waiting is None:
        return csv_document(DRILL_DOWN_FIELDS, _rows_of((await _business_lines(query, db=db)).lines))
    if query.order == "slowest":
        found = await BusinessSecondsQueries(db).open_claims(account_id=query.account_id, start=start, end=end)
        opened = sorted((waiting.price(line) for line in found), key=_slowest)
    lines = InsightQueries(db).all_handoffs(
        account_id=query.account_id, start=start, end=end, now=query.now, order=query.order, clock=query.clock
    )

    async def rows() -> AsyncIterator[tuple[object, ...]]:
        pending = iter(opened)
        following = next(pending, None)
        async for line in lines:
            if line.delta_s is None:
                if opened:
                    continue  # an open claim: it comes from `opened`, in its business place
                line = waiting.price(line)
            while following is not None and _slowest(following) < _slowest(line):
                yield _row(following)
                following = next(pending, None)
            # Not dataclasses.astuple: it deep-copies every value, a cost per row of a download of every row.
            yield _row(line)
        while following is not None:
            yield _row(following)
            following = next(pending, None)

    return csv_document(DRILL_DOWN_FIELDS, rows())


def _row(line: HandoffLine) -> tuple[object, ...]:
    return tuple(getattr(line, name) for name in _LINE_FIELDS)


async def _rows_of(lines: Sequence[HandoffLine]) -> AsyncIterator[tuple[object, ...]]:
    for line in lines:
        yield _row(line)


@dataclass(frozen=True, kw_only=True)
class GetSeries(_WindowQuery):
    """The statistics per calendar day in a time zone, and the histogram of the window's deltas."""

    tz: str


async def get_series(query: GetSeries, *, db: Database) -> EscalationSeriesRead:
    tz = zone(query.tz)  # first: an unknown zone is refused before any work
    start, end = window(query.period, query.now)
    days = local_days(start, end, tz)
    found = await InsightQueries(db).series(
        account_id=query.account_id,
        start=start,
        end=end,
        day_starts=[begins for _, begins in days],
        bounds=[float(b) for b in HISTOGRAM_BOUNDS_SECONDS],
        clock=query.clock,
    )
    version = _schedule_version(found.clock_state, query.clock)
    if found.clock_state.n_pending:
        found, version = await _priced_series(query, [begins for _, begins in days], db=db)
    empty = GroupStats(None, None, 0, 0, None, None, None)
    return EscalationSeriesRead(
        **_answered(query, found.data_as_of, version),
        tz=query.tz,
        days=[SeriesDay(date=day, **_statistics(found.days.get(i, empty))) for i, (day, _) in enumerate(days)],
        histogram=Histogram(
            bounds_seconds=list(HISTOGRAM_BOUNDS_SECONDS),
            counts=[found.histogram.get(i, 0) for i in range(len(HISTOGRAM_BOUNDS_SECONDS))],
        ),
    )


# ---- Business hours: the schedule, and clock=business computed at query time ----------------------------------


@dataclass(frozen=True)
class SetBusinessHours:
    """Replace an account's business hours (validated first: an invalid schedule is never stored)."""

    account_id: UUID
    timezone: str
    week: dict[str, list[list[str]]]
    holidays: list[str]


def _schedule_read(stored: StoredSchedule) -> BusinessHoursRead:
    return BusinessHoursRead(
        timezone=stored.timezone,
        week=Week.model_validate(stored.week),
        holidays=stored.holidays,
        version=stored.version,
        updated_at=stored.updated_at,
    )


async def set_business_hours(
    cmd: SetBusinessHours, *, db: Database, on_change: Callable[[], None] | None = None
) -> BusinessHoursRead:
    """`on_change`: told after the commit (the recompute loop starts pricing for the new version)."""
    parse_schedule(cmd.timezone, cmd.week, cmd.holidays)  # InvalidSchedule (422) names the first problem
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        stored = await uow.business_hours.replace(
            account_id=cmd.account_id, timezone=cmd.timezone, week=cmd.week, holidays=cmd.holidays
        )
    if on_change is not None:
        on_change()
    return _schedule_read(stored)


async def get_business_hours(*, account_id: UUID, db: Database) -> BusinessHoursRead:
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        stored = await uow.business_hours.get(account_id=account_id)
    if stored is None:
        raise BusinessHoursNotSet()
    return _schedule_read(stored)


# A step recorded after the request's instant (a producer's clock ahead) still has its open seconds counted, up to
# this far ahead: the clock is built over [window_start, max(now, latest first action)], and a bound keeps one
# absurd timestamp from making that span (and the clock's build) unbounded.
FUTURE_HORIZON = timedelta(days=7)


@dataclass(frozen=True)
class _Business:
    """A window's counted handoffs (column by column) with their business deltas, and the schedule version."""

    n: int
    columns: dict[str, list[Any]]
    deltas: list[float | None]  # per handoff: open seconds from the claim to its first action
    clock: BusinessClock
    now_s: float
    version: int
    tree_labels: dict[UUID, str | None]
    data_as_of: datetime | None

    def since_claim(self, column: str) -> list[float | None]:
        """Per handoff: open seconds from its claim to that column's instant (None where it has none)."""
        at = self.clock.at_epoch
        return [
            None if t is None else max(0.0, at(t) - at(c))
            for c, t in zip(self.columns["claimed_s"], self.columns[column], strict=True)
        ]


def _parsed(stored: StoredSchedule) -> Schedule:
    return parse_schedule(stored.timezone, stored.week, stored.holidays)


async def _current_schedule(account_id: UUID, *, db: Database) -> tuple[StoredSchedule, Schedule] | None:
    """The account's schedule as stored (with its version) and parsed; None when it has none."""
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        stored = await uow.business_hours.get(account_id=account_id)
    return None if stored is None else (stored, _parsed(stored))


async def _business(
    account_id: UUID, period: str, now: datetime, *, db: Database, columns: Sequence[str] = (), labels: bool = False
) -> _Business:
    current = await _current_schedule(account_id, db=db)
    if current is None:
        raise BusinessHoursRequired()
    stored, schedule = current
    start, end = window(period, now)
    wanted = ("claimed_s", "first_s", *(c for c in columns if c not in ("claimed_s", "first_s")))
    found = await ClaimRowQueries(db).counted(
        account_id=account_id, start=start, end=end, columns=wanted, tree_labels=labels
    )
    # Every instant a delta is priced to (a first human or ai step may come after the first action, past `now`).
    instants = [found.columns[c] for c in ("first_s", "human_s", "ai_s") if c in found.columns]
    latest = max((t for column in instants for t in column if t is not None), default=end.timestamp())
    clock_end = min(max(end, datetime.fromtimestamp(latest, UTC)), end + FUTURE_HORIZON)
    b = _Business(
        found.n,
        found.columns,
        [],
        BusinessClock(schedule, start, clock_end),
        end.timestamp(),
        stored.version,
        found.tree_labels,
        found.data_as_of,
    )
    b.deltas.extend(b.since_claim("first_s"))
    return b


def _with_action(deltas: Sequence[float | None]) -> list[float]:
    return [d for d in deltas if d is not None]


def _schedule_version(state: ClockState, clock: Clock) -> int | None:
    """The version a business answer used (None for wall); refuses clock=business without a schedule."""
    if clock == "business" and state.schedule_version is None:
        raise BusinessHoursRequired()
    return state.schedule_version


async def _priced_stats(
    query: GetEscalationMetric, stored: EscalationStats, *, db: Database
) -> tuple[EscalationStats, int]:
    """The section 5 statistics in business seconds priced now (the exclusions involve no delta: as stored)."""
    b = await _business(query.account_id, query.period, query.now, db=db, columns=("human_s", "ai_s"))
    overall = delta_stats(_with_action(b.deltas))
    by_actor = {a: delta_stats(_with_action(b.since_claim(f"{a}_s"))) for a in ("human", "ai")}
    stats = EscalationStats(
        n_claimed=b.n,
        **asdict(overall),
        data_as_of=b.data_as_of,
        by_actor=by_actor,
        n_unclaimed=stored.n_unclaimed,
        n_released=stored.n_released,
    )
    return stats, b.version


# by -> the column that keys the group
_GROUP_COLUMN = {"tree": "tree_id", "category": "tree_category", "priority": "priority", "claimer": "claimed_by"}


async def _priced_breakdown(query: GetBreakdown, *, db: Database) -> tuple[Breakdown, int]:
    column = _GROUP_COLUMN[query.by]
    b = await _business(query.account_id, query.period, query.now, db=db, columns=(column,), labels=query.by == "tree")
    members: dict[Any, list[float | None]] = {}
    for key, delta in zip(b.columns[column], b.deltas, strict=True):
        members.setdefault(key, []).append(delta)
    groups = []
    for key, deltas in members.items():
        text = None if key is None else str(key)
        label = b.tree_labels.get(key) if query.by == "tree" and key is not None else text
        groups.append(group_stats(text, label, len(deltas), _with_action(deltas)))
    return Breakdown(groups, b.data_as_of), b.version


@dataclass(frozen=True)
class _BusinessLines:
    lines: list[HandoffLine]
    version: int


async def _business_lines(query: ListHandoffs, *, db: Database) -> _BusinessLines:
    """Every counted handoff with business delta and waiting time priced now, in the drill-down's order."""
    b = await _business(query.account_id, query.period, query.now, db=db, columns=_LINE_COLUMNS)
    at = b.clock.at_epoch
    now_open = at(b.now_s)
    lines = [
        HandoffLine(
            **{c: b.columns[c][i] for c in _LINE_COLUMNS},
            delta_s=delta,
            waiting_s=max(0.0, now_open - at(b.columns["claimed_s"][i])) if delta is None else None,
        )
        for i, delta in enumerate(b.deltas)
    ]
    lines.sort(key=lambda line: line.handoff_id)  # ties: handoff_id ascending (the sorts below are stable)
    if query.order == "newest":
        lines.sort(key=lambda line: line.claimed_at, reverse=True)
    else:
        lines.sort(key=lambda line: line.delta_s if line.delta_s is not None else line.waiting_s or 0.0, reverse=True)
    return _BusinessLines(lines, b.version)


async def _priced_page(query: ListHandoffs, *, db: Database) -> tuple[HandoffLines, int]:
    found = await _business_lines(query, db=db)
    return HandoffLines(found.lines[query.offset : query.offset + query.limit], len(found.lines)), found.version


@dataclass(frozen=True)
class _Waiting:
    """Prices the open claims' waiting time (open seconds from the claim to now) with the current schedule."""

    clock: BusinessClock
    now_s: float

    def price(self, line: HandoffLine) -> HandoffLine:
        at = self.clock.at_epoch
        return replace(line, waiting_s=max(0.0, at(self.now_s) - at(line.claimed_at.timestamp())))


async def _waiting_clock(query: ListHandoffs, version: int | None, *, db: Database) -> _Waiting | None:
    """The clock of the answer's window up to now, with the schedule of `version`; None when the schedule changed
    since (the caller prices the whole window again)."""
    current = await _current_schedule(query.account_id, db=db)
    if current is None or current[0].version != version:
        return None
    start, end = window(query.period, query.now)
    return _Waiting(BusinessClock(current[1], start, end), end.timestamp())


async def _priced_series(query: GetSeries, day_starts: list[datetime], *, db: Database) -> tuple[Series, int]:
    b = await _business(query.account_id, query.period, query.now, db=db)
    starts = [begins.timestamp() for begins in day_starts]
    per_day: dict[int, list[float | None]] = {}
    counts: dict[int, int] = {}
    for claimed_s, delta in zip(b.columns["claimed_s"], b.deltas, strict=True):
        per_day.setdefault(bisect_right(starts, claimed_s) - 1, []).append(delta)
        if delta is not None:
            bucket = bisect_right(HISTOGRAM_BOUNDS_SECONDS, delta) - 1
            counts[bucket] = counts.get(bucket, 0) + 1
    days = {i: group_stats(None, None, len(ds), _with_action(ds)) for i, ds in per_day.items()}
    return Series(days, counts, b.data_as_of), b.version


# ---- Business seconds stored per handoff: the recompute loop's unit of work ------------------------------------


async def recompute_business_seconds(*, db: Database, now: datetime, batch_size: int) -> int:
    """One pass: prices every acted-on handoff whose stored business seconds are not of its account's current
    schedule, in batches of `batch_size` (each its own transaction, its rows locked and skipped by any other
    replica's pass), one schedule parsed per account. Returns the handoffs this pass priced."""
    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
        accounts = await uow.business_seconds.accounts_with_work_all_accounts()
    priced = 0
    for account in accounts:
        stored = account.schedule
        schedule = _parsed(stored)
        while True:
            async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
                batch = await uow.business_seconds.lock_pending(
                    account_id=account.account_id, version=stored.version, limit=batch_size
                )
                deltas, human, ai = price_spans(
                    schedule,
                    [c.claimed_s for c in batch],
                    [c.first_s for c in batch],
                    [c.human_s for c in batch],
                    [c.ai_s for c in batch],
                    until=now + FUTURE_HORIZON,
                )
                await uow.business_seconds.store(
                    account_id=account.account_id,
                    version=stored.version,
                    handoff_ids=[c.handoff_id for c in batch],
                    deltas=deltas,
                    human=human,
                    ai=ai,
                )
            priced += len(batch)
            if len(batch) < batch_size:
                break
    return priced
