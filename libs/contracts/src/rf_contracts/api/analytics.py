"""Public API models of the escalation time-to-first-action metric (docs/contract.md#the-escalation-metric)."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Final, Literal, TypeAlias
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field

from rf_contracts.api import examples as ex
from rf_contracts.api.business_hours import Clock
from rf_contracts.api.examples import example

Period: TypeAlias = Literal["7d", "30d", "90d"]

PERIODS: Final[dict[str, timedelta]] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}

METRIC_DEFINITION: Final = (
    "Escalation time-to-first-action: for each handoff of this account claimed within the window "
    "(its current claim; a release without a later claim removes it), the seconds from the claim to the "
    "first step recorded on the same session at or after the claim; avg, median and p95 are over the "
    "handoffs that have such a step. It measures how fast a claimed escalation turns into work, "
    "not time saved."
)

_HUMAN = {"n_handoffs_with_action": 9, "avg_seconds": 455.0, "median_seconds": 360.0, "p95_seconds": 1290.0}
_AI = {"n_handoffs_with_action": 5, "avg_seconds": 38.2, "median_seconds": 30.0, "p95_seconds": 75.0}


class FirstActorStats(BaseModel):
    """The metric's action statistics counting only steps of one actor type (docs/contract.md#the-escalation-metric)."""

    model_config = example(_HUMAN, frozen=True)

    n_handoffs_with_action: int = Field(
        ge=0, description="counted handoffs with a step of this actor_type at or after claimed_at"
    )
    avg_seconds: float | None = Field(description="mean claim-to-first-step-of-this-kind delta; null without one")
    median_seconds: float | None = Field(description="50th percentile, linear interpolation; null without one")
    p95_seconds: float | None = Field(description="95th percentile, linear interpolation; null without one")


class ByFirstActor(BaseModel):
    """The first action of each kind: the earliest step with that actor_type at or after claimed_at."""

    model_config = example({"human": _HUMAN, "ai": _AI}, frozen=True)

    human: FirstActorStats
    ai: FirstActorStats


class Excluded(BaseModel):
    """Handoffs requested in the window (requested_at in it) that the metric leaves out: no current claim."""

    model_config = example({"unclaimed": 2, "released": 1}, frozen=True)

    unclaimed: int = Field(ge=0, description="handoffs requested in the window without a current claim")
    released: int = Field(ge=0, description="those of them that had been claimed and were released")


class EscalationMetricRead(BaseModel):
    """`GET /analytics/flowpilot/escalations?period=7d|30d|90d` for the caller's account."""

    model_config = example(
        {
            "period": "7d",
            "window_start": "2026-11-22T09:30:00Z",
            "window_end": "2026-11-29T09:30:00Z",
            "n_handoffs_claimed": 14,
            "n_handoffs_with_action": 12,
            "avg_seconds": 402.5,
            "median_seconds": 310.0,
            "p95_seconds": 1290.0,
            "by_first_actor": {"human": _HUMAN, "ai": _AI},
            "excluded": {"unclaimed": 2, "released": 1},
            "metric_definition": METRIC_DEFINITION,
            "data_as_of": "2026-11-29T09:29:58Z",
            "clock": "wall",
            "schedule_version": None,
        },
        frozen=True,
    )

    period: Period
    window_start: AwareDatetime = Field(description="window_end minus the period")
    window_end: AwareDatetime = Field(description="the time of the request")
    n_handoffs_claimed: int = Field(ge=0, description="claimed handoffs with window_start <= claimed_at <= window_end")
    n_handoffs_with_action: int = Field(ge=0, description="those of them with a step at or after claimed_at")
    avg_seconds: float | None = Field(description="mean claim-to-first-step delta; null without actions")
    median_seconds: float | None = Field(description="50th percentile, linear interpolation; null without actions")
    p95_seconds: float | None = Field(description="95th percentile, linear interpolation; null without actions")
    by_first_actor: ByFirstActor = Field(
        description="the action statistics per actor_type, each over the first step of that kind"
    )
    excluded: Excluded = Field(description="handoffs requested in the window that have no current claim")
    metric_definition: str
    data_as_of: AwareDatetime | None = Field(
        description="occurred_at of the newest event of this account applied to the read model; null when none"
    )
    clock: Clock = Field(default="wall", description="wall: elapsed seconds; business: open seconds of the schedule")
    schedule_version: int | None = Field(
        default=None, description="the business-hours version the answer used (clock=business); null for wall"
    )


# ---- Section 7: breakdown, drill-down, series (docs/contract.md#escalation-insights) ------------------------

BreakdownBy: TypeAlias = Literal["tree", "category", "priority", "claimer"]
DrillDownOrder: TypeAlias = Literal["slowest", "newest"]
DrillDownFormat: TypeAlias = Literal["json", "csv"]

# Section 7's fixed histogram bounds: counts[i] counts deltas >= bounds[i] and < bounds[i + 1] (the last: >= 86400).
HISTOGRAM_BOUNDS_SECONDS: Final[tuple[int, ...]] = (0, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400)

_GROUP = {
    "key": ex.TREE_ID,
    "label": "Printer offline",
    "n_handoffs_claimed": 12,
    "n_handoffs_with_action": 10,
    "avg_seconds": 455.0,
    "median_seconds": 360.0,
    "p95_seconds": 1290.0,
}
_HANDOFF = {
    "handoff_id": ex.HANDOFF_ID,
    "session_id": ex.SESSION_ID,
    "tree_id": ex.TREE_ID,
    "priority": "high",
    "claimed_by": ex.OTHER_USER_ID,
    "claimed_at": ex.AT,
    "first_action_at": ex.LATER,
    "first_actor_type": "human",
    "delta_seconds": 720.0,
    "waiting_seconds": None,
}
_DAY = {
    "date": "2026-11-29",
    "n_handoffs_claimed": 3,
    "n_handoffs_with_action": 2,
    "avg_seconds": 540.0,
    "median_seconds": 540.0,
    "p95_seconds": 702.0,
}
_HISTOGRAM = {
    "bounds_seconds": [0, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400],
    "counts": [0, 0, 1, 0, 2, 3, 2, 1, 1, 0, 0],
}


class BreakdownGroup(BaseModel):
    """The section 5 statistics over the counted handoffs of one tree, category, priority or claimer."""

    model_config = example(_GROUP, frozen=True)

    key: str | None = Field(
        description="tree id, tree category, priority or claiming user id; null when the events naming it are "
        "not known (yet), or for a tree without category"
    )
    label: str | None = Field(description="the tree's title, the category, the priority or the user id")
    n_handoffs_claimed: int = Field(ge=0)
    n_handoffs_with_action: int = Field(ge=0)
    avg_seconds: float | None
    median_seconds: float | None
    p95_seconds: float | None


class EscalationBreakdownRead(BaseModel):
    """`GET /analytics/flowpilot/escalations/breakdown?period=&by=`: the metric per group."""

    model_config = example(
        {
            "period": "30d",
            "window_start": "2026-10-30T09:30:00Z",
            "window_end": ex.AT,
            "by": "tree",
            "groups": [_GROUP],
            "data_as_of": ex.AT,
            "clock": "business",
            "schedule_version": 3,
        },
        frozen=True,
    )

    period: Period
    window_start: AwareDatetime
    window_end: AwareDatetime
    by: BreakdownBy
    groups: list[BreakdownGroup] = Field(description="ordered by n_handoffs_claimed descending, then key ascending")
    data_as_of: AwareDatetime | None
    clock: Clock = Field(default="wall", description="wall: elapsed seconds; business: open seconds of the schedule")
    schedule_version: int | None = Field(
        default=None, description="the business-hours version the answer used (clock=business); null for wall"
    )


class EscalationHandoff(BaseModel):
    """One counted handoff of the drill-down."""

    model_config = example(_HANDOFF, frozen=True)

    handoff_id: UUID
    session_id: UUID
    tree_id: UUID | None = Field(description="the tree the session started on; null until that event is known")
    priority: str | None = Field(description="low, normal, high or urgent; null until the request is known")
    claimed_by: UUID | None
    claimed_at: AwareDatetime
    first_action_at: AwareDatetime | None
    first_actor_type: Literal["human", "ai"] | None = Field(
        description="actor_type of the first action (human when a human and an ai step share its instant)"
    )
    delta_seconds: float | None = Field(description="seconds from the claim to the first action; null without one")
    waiting_seconds: float | None = Field(description="now - claimed_at for handoffs without an action, else null")


DRILL_DOWN_FIELDS: Final[tuple[str, ...]] = tuple(EscalationHandoff.model_fields)


class EscalationHandoffPage(BaseModel):
    """`GET /analytics/flowpilot/escalations/handoffs`: one page of the counted handoffs and their total."""

    model_config = example(
        {"items": [_HANDOFF], "total": 1, "limit": 50, "offset": 0, "clock": "wall", "schedule_version": None},
        frozen=True,
    )

    items: list[EscalationHandoff]
    total: int = Field(ge=0, description="every counted handoff of the window")
    limit: int
    offset: int
    clock: Clock = Field(default="wall", description="wall: elapsed seconds; business: open seconds of the schedule")
    schedule_version: int | None = Field(
        default=None, description="the business-hours version the answer used (clock=business); null for wall"
    )


class SeriesDay(BaseModel):
    """The section 5 statistics over the counted handoffs claimed on one calendar day of the zone."""

    model_config = example(_DAY, frozen=True)

    date: dt.date
    n_handoffs_claimed: int = Field(ge=0)
    n_handoffs_with_action: int = Field(ge=0)
    avg_seconds: float | None
    median_seconds: float | None
    p95_seconds: float | None


class Histogram(BaseModel):
    """Deltas of the counted handoffs with an action, in fixed buckets."""

    model_config = example(_HISTOGRAM, frozen=True)

    bounds_seconds: list[int]
    counts: list[int] = Field(description="counts[i]: deltas >= bounds_seconds[i] and < bounds_seconds[i + 1]")


class EscalationSeriesRead(BaseModel):
    """`GET /analytics/flowpilot/escalations/series?period=&tz=`: per local day, zero-filled, and a histogram."""

    model_config = example(
        {
            "period": "7d",
            "tz": "Europe/Berlin",
            "days": [_DAY],
            "histogram": _HISTOGRAM,
            "data_as_of": ex.AT,
            "clock": "wall",
            "schedule_version": None,
        },
        frozen=True,
    )

    period: Period
    tz: str
    days: list[SeriesDay] = Field(description="every calendar day in tz that overlaps the window, oldest first")
    histogram: Histogram
    data_as_of: AwareDatetime | None
    clock: Clock = Field(default="wall", description="wall: elapsed seconds; business: open seconds of the schedule")
    schedule_version: int | None = Field(
        default=None, description="the business-hours version the answer used (clock=business); null for wall"
    )


# The drill-down's CSV answer as documented: the header row of DRILL_DOWN_FIELDS, then one row per handoff
# (RFC 4180, CRLF line ends, an empty cell for null).
CSV_EXAMPLE: Final = (
    ",".join(DRILL_DOWN_FIELDS) + "\r\n"
    f"{ex.HANDOFF_ID},{ex.SESSION_ID},{ex.TREE_ID},high,{ex.OTHER_USER_ID},{ex.AT},{ex.LATER},human,720.0,\r\n"
)
