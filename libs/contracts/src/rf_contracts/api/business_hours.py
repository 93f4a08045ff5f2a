"""Public REST models of an account's business hours (the schedule behind `clock=business`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from rf_contracts.api.examples import example

Clock: TypeAlias = Literal["wall", "business"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]
# One opening interval of a day: ["09:00", "17:00"] (start inclusive, end exclusive; "24:00" is the day's end).
Interval = Annotated[list[ClockTime], Field(min_length=2, max_length=2)]
DayIntervals = Annotated[list[Interval], Field(max_length=24)]
IsoDate = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]


# The examples' schedule: 9 to 5 (Friday to 3); the full schedules add a lunch break on Monday.
_WEEK_EXAMPLE: dict[str, Any] = {
    "mon": [["09:00", "17:00"]],
    "tue": [["09:00", "17:00"]],
    "wed": [["09:00", "17:00"]],
    "thu": [["09:00", "17:00"]],
    "fri": [["09:00", "15:00"]],
    "sat": [],
    "sun": [],
}
_SCHEDULE_EXAMPLE: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "week": {**_WEEK_EXAMPLE, "mon": [["09:00", "12:30"], ["13:30", "17:00"]]},
    "holidays": ["2026-12-24", "2026-12-25"],
}


class Week(BaseModel):
    model_config = example(_WEEK_EXAMPLE, extra="forbid")

    mon: DayIntervals = []
    tue: DayIntervals = []
    wed: DayIntervals = []
    thu: DayIntervals = []
    fri: DayIntervals = []
    sat: DayIntervals = []
    sun: DayIntervals = []


class BusinessHoursWrite(BaseModel):
    """PUT /analytics/business-hours: when the account's team is at work, in its IANA time zone."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [_SCHEDULE_EXAMPLE]
        },
    )

    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    week: Week
    holidays: Annotated[list[IsoDate], Field(max_length=1000)] = []


class BusinessHoursRead(BusinessHoursWrite):
    """The schedule in force; `version` grows with each change and is named by every `clock=business` answer."""

    model_config = example(
        {**_SCHEDULE_EXAMPLE, "version": 3, "updated_at": "2026-11-29T09:30:00Z"}, extra="forbid"
    )

    version: int
    updated_at: AwareDatetime
