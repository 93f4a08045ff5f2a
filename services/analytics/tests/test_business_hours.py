"""Business seconds against a brute-force count, minute by minute, across daylight saving changes and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.business_hours import WEEKDAYS, BusinessClock, InvalidSchedule, Schedule, parse_schedule

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "America/Santiago"]
# Spans around the 2026 transitions of these zones (and some quiet weeks), so that most examples cross one.
ANCHORS = [
    datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC),  # Europe
    datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),  # United States
    datetime(2026, 4, 5, tzinfo=UTC), datetime(2026, 10, 4, tzinfo=UTC),  # Lord Howe (30 minutes)
    datetime(2026, 9, 6, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC),
]


def brute_force_seconds(
    zone: str, week: dict[str, list[list[str]]], holidays: set[date], start: datetime, end: datetime
) -> int:
    """Section 7's words, literally: every minute of [start, end) whose local wall clock is open counts 60 s."""
    tz = ZoneInfo(zone)
    seconds = 0
    at = start
    while at < end:
        local = at.astimezone(tz)
        if local.date() not in holidays:
            clock = f"{local.hour:02d}:{local.minute:02d}"
            for opens, closes in week.get(WEEKDAYS[local.weekday()], []):
                if opens <= clock and (clock < closes or closes == "24:00"):
                    seconds += 60
                    break
        at += timedelta(minutes=1)
    return seconds


def _clock(minutes: int) -> str:
    return "24:00" if minutes == 24 * 60 else f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def weeks(draw: st.DrawFn) -> dict[str, list[list[str]]]:
    week: dict[str, list[list[str]]] = {}
    for day in WEEKDAYS:
        cuts = sorted(set(draw(st.lists(st.integers(0, 96), max_size=4))))
        cuts = cuts[: len(cuts) - len(cuts) % 2]
        week[day] = [[_clock(a * 15), _clock(b * 15)] for a, b in zip(cuts[::2], cuts[1::2], strict=True) if a < b]
    return week


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    week=weeks(),
    anchor=st.sampled_from(ANCHORS),
    start_min=st.integers(-3 * 24 * 60, 24 * 60),
    length_min=st.integers(0, 4 * 24 * 60),
    holiday_offsets=st.sets(st.integers(-3, 4), max_size=3),
)
def test_open_seconds_match_a_minute_by_minute_count(
    zone: str, week: dict[str, list[list[str]]], anchor: datetime, start_min: int, length_min: int,
    holiday_offsets: set[int],
) -> None:
    holidays = {(anchor + timedelta(days=d)).date() for d in holiday_offsets}
    schedule = parse_schedule(zone, week, [h.isoformat() for h in holidays])
    start = anchor + timedelta(minutes=start_min)
    end = start + timedelta(minutes=length_min)
    assert schedule.open_seconds(start, end) == brute_force_seconds(zone, week, holidays, start, end)


def test_the_repeated_autumn_hour_counts_twice_and_the_missing_spring_hour_never() -> None:
    night = {day: [["00:00", "24:00"]] for day in WEEKDAYS}
    berlin = parse_schedule("Europe/Berlin", night, [])
    # 2026-10-25 in Berlin is 25 hours long; 2026-03-29 is 23 hours long.
    autumn = datetime(2026, 10, 25, tzinfo=ZoneInfo("Europe/Berlin"))
    spring = datetime(2026, 3, 29, tzinfo=ZoneInfo("Europe/Berlin"))
    assert berlin.open_seconds(autumn, datetime(2026, 10, 26, tzinfo=ZoneInfo("Europe/Berlin"))) == 25 * 3600
    assert berlin.open_seconds(spring, datetime(2026, 3, 30, tzinfo=ZoneInfo("Europe/Berlin"))) == 23 * 3600


def test_an_interval_inside_the_repeated_hour_is_open_on_both_passes() -> None:
    schedule = parse_schedule("Europe/Berlin", {"sun": [["02:15", "02:45"]]}, [])
    day = datetime(2026, 10, 24, 22, tzinfo=UTC)  # 00:00 local, the night the clocks go back at 03:00 CEST
    assert schedule.open_seconds(day, day + timedelta(hours=6)) == 2 * 30 * 60


def test_a_holiday_is_closed_all_day() -> None:
    week = {day: [["09:00", "17:00"]] for day in WEEKDAYS}
    schedule = parse_schedule("America/New_York", week, ["2026-12-25"])
    christmas = datetime(2026, 12, 25, tzinfo=ZoneInfo("America/New_York"))
    assert schedule.open_seconds(christmas, christmas + timedelta(days=1)) == 0
    assert schedule.open_seconds(christmas, christmas + timedelta(days=2)) == 8 * 3600


def test_sub_second_timestamps_are_counted_exactly() -> None:
    week = {day: [["09:00", "17:00"]] for day in WEEKDAYS}
    schedule = parse_schedule("UTC", week, [])
    start = datetime(2026, 6, 1, 16, 59, 59, 250_000, tzinfo=UTC)
    # 0.75 s before closing, then the first 1.25 s of the next morning.
    assert schedule.open_seconds(start, start + timedelta(hours=16, seconds=2)) == pytest.approx(0.75 + 1.25)


@pytest.mark.parametrize(
    ("timezone", "week", "holidays", "message"),
    [
        ("Mars/Olympus", {}, [], "unknown time zone"),
        ("UTC", {"monday": []}, [], "unknown weekday"),
        ("UTC", {"mon": [["10:00", "09:00"]]}, [], "empty or inverted"),
        ("UTC", {"mon": [["09:00", "09:00"]]}, [], "empty or inverted"),
        ("UTC", {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}, [], "overlap"),
        ("UTC", {"mon": [["9:00", "12:00"]]}, [], "not a time of day"),
        ("UTC", {"mon": [["09:00", "24:01"]]}, [], "not a time of day"),
        ("UTC", {"mon": [["09:00"]]}, [], "is a pair"),
        ("UTC", {}, ["2026-02-30"], "not a date"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(
    timezone: str, week: dict[str, list[list[str]]], holidays: list[str], message: str
) -> None:
    with pytest.raises(InvalidSchedule, match=message) as refused:
        parse_schedule(timezone, week, holidays)
    assert refused.value.code == "invalid_business_hours"


def test_touching_intervals_are_allowed_and_sorted() -> None:
    schedule = parse_schedule("UTC", {"tue": [["13:00", "17:00"], ["09:00", "13:00"]]}, [])
    assert isinstance(schedule, Schedule)
    assert schedule.week[1] == ((540, 780), (780, 1020))


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    week=weeks(),
    anchor=st.sampled_from(ANCHORS),
    spans=st.lists(st.tuples(st.integers(0, 6 * 24 * 3600 * 10**6), st.integers(0, 3 * 24 * 3600 * 10**6)),
                   min_size=1, max_size=20),
)
def test_the_clock_agrees_with_open_seconds_on_every_span(
    zone: str, week: dict[str, list[list[str]]], anchor: datetime, spans: list[tuple[int, int]]
) -> None:
    schedule = parse_schedule(zone, week, [(anchor + timedelta(days=1)).date().isoformat()])
    origin = anchor - timedelta(days=2)
    clock = BusinessClock(schedule, origin, origin + timedelta(days=9))
    for offset_us, length_us in spans:
        start = origin + timedelta(microseconds=offset_us)
        end = start + timedelta(microseconds=length_us)
        assert clock.between(start, end) == pytest.approx(schedule.open_seconds(start, end), abs=1e-6)
