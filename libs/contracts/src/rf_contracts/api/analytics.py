"""Public API models of the escalation time-to-first-action metric (docs/contract.md#the-escalation-metric)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, Field

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

    model_config = example({
        "period": "7d", "window_start": "2026-11-22T09:30:00Z", "window_end": "2026-11-29T09:30:00Z",
        "n_handoffs_claimed": 14, "n_handoffs_with_action": 12, "avg_seconds": 402.5, "median_seconds": 310.0,
        "p95_seconds": 1290.0, "by_first_actor": {"human": _HUMAN, "ai": _AI},
        "excluded": {"unclaimed": 2, "released": 1}, "metric_definition": METRIC_DEFINITION,
        "data_as_of": "2026-11-29T09:29:58Z",
    }, frozen=True)

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
