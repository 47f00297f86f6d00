"""Schedule specs: parsing, next run times across DST (Debian cron rules), sun events, policies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import astral
import astral.sun
import pytest

from edgeiot_gateway.automation.errors import DefinitionError
from edgeiot_gateway.automation.scheduler import Location, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")
PLACE = Location(52.52, 13.405, 34.0, "Europe/Berlin")


def local(text: str, tz: ZoneInfo = BERLIN, fold: int = 0) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def runs(spec: Mapping[str, object], start: float, count: int) -> list[float]:
    parsed, out, t = parse_schedule(spec), [], start
    for _ in range(count):
        nxt = parsed.next_after(t, PLACE)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


# Europe/Berlin 2026: 29 March 02:00 CET -> 03:00 CEST; 25 October 03:00 CEST -> 02:00 CET.


@pytest.mark.parametrize(
    "spec",
    [
        {"cron": "30 2 * * *", "tz": "Europe/Berlin"},
        {"cron": "0 30 2 * * *", "tz": "Europe/Berlin"},
        {"daily": "02:30", "tz": "Europe/Berlin"},
    ],
)
def test_fixed_time_in_skipped_hour_runs_right_after_the_jump(spec: dict[str, object]) -> None:
    got = runs(spec, local("2026-03-28T12:00"), 3)
    assert got[0] == utc("2026-03-29T01:00")  # 03:00 CEST, the first minute after the jump
    assert got[1] == local("2026-03-30T02:30") == utc("2026-03-30T00:30")
    assert got[2] == utc("2026-03-31T00:30")


@pytest.mark.parametrize(
    "spec",
    [
        {"cron": "30 2 * * *", "tz": "Europe/Berlin"},
        {"cron": "0 30 2 * * *", "tz": "Europe/Berlin"},
        {"daily": "02:30:00", "tz": "Europe/Berlin"},
    ],
)
def test_fixed_time_in_repeated_hour_runs_once(spec: dict[str, object]) -> None:
    got = runs(spec, local("2026-10-24T12:00"), 2)
    assert got == [utc("2026-10-25T00:30"), utc("2026-10-26T01:30")]  # 02:30 CEST, then CET
    # Asked from inside the second pass of the hour (02:10 CET): not again that night.
    second_pass = local("2026-10-25T02:10", fold=1)
    assert second_pass == utc("2026-10-25T01:10")
    assert parse_schedule(spec).next_after(second_pass) == utc("2026-10-26T01:30")


def test_hourly_job_follows_the_wall_clock() -> None:
    spring = runs({"cron": "0 * * * *", "tz": "Europe/Berlin"}, local("2026-03-29T00:30"), 3)
    # 01:00 CET, 03:00 CEST, 04:00 CEST: no 02:00 that night, still one run per real hour.
    assert spring == [utc("2026-03-29T00:00"), utc("2026-03-29T01:00"), utc("2026-03-29T02:00")]
    autumn = runs({"cron": "0 * * * *", "tz": "Europe/Berlin"}, local("2026-10-25T01:30"), 3)
    # 02:00 CEST, 02:00 CET, 03:00 CET: the wall clock shows 02:00 twice, both run.
    assert autumn == [utc("2026-10-25T00:00"), utc("2026-10-25T01:00"), utc("2026-10-25T02:00")]


def test_wildcard_minute_in_the_changing_hour() -> None:
    spec = {"cron": "*/30 2 * * *", "tz": "Europe/Berlin"}
    # Spring: hour 2 does not exist, the job does not run that night.
    assert runs(spec, local("2026-03-29T00:00"), 1) == [local("2026-03-30T02:00")]
    # Autumn: it runs in both passes of hour 2.
    assert runs(spec, local("2026-10-25T00:00"), 5) == [
        utc("2026-10-25T00:00"), utc("2026-10-25T00:30"),
        utc("2026-10-25T01:00"), utc("2026-10-25T01:30"),
        local("2026-10-26T02:00"),
    ]  # fmt: skip


def test_six_field_cron_has_seconds_and_every_and_weekdays() -> None:
    start = utc("2026-05-01T10:00:00")
    assert runs({"cron": "*/20 * * * * *"}, start, 3) == [start + 20, start + 40, start + 60]
    assert runs({"every": 300}, start + 1, 2) == [start + 300, start + 600]  # epoch-aligned
    # 2026-05-01 is a Friday: Monday and Friday 07:30 in Berlin.
    got = runs({"daily": "07:30", "weekdays": ["mon", "fri"], "tz": "Europe/Berlin"}, start, 3)
    assert got == [local("2026-05-04T07:30"), local("2026-05-08T07:30"), local("2026-05-11T07:30")]


def test_zone_defaults_to_the_location() -> None:
    spec = parse_schedule({"daily": "07:30"})
    start = utc("2026-05-01T00:00")
    assert spec.next_after(start, PLACE) == local("2026-05-01T07:30")
    assert spec.next_after(start, None) == utc("2026-05-01T07:30")


def test_once() -> None:
    spec = parse_schedule({"once": "2026-12-24T18:00:00", "tz": "Europe/Berlin"})
    at = local("2026-12-24T18:00")
    assert spec.next_after(at - 1) == at
    assert spec.next_after(at) is None
    with_offset = parse_schedule({"once": "2026-12-24T18:00:00+00:00", "tz": "Europe/Berlin"})
    assert with_offset.next_after(0) == utc("2026-12-24T18:00")


@pytest.mark.parametrize("event", ["sunrise", "sunset", "dawn", "dusk"])
@pytest.mark.parametrize("offset", [0, -900, 1800])
def test_sun_events_match_astral(event: str, offset: int) -> None:
    observer = astral.Observer(PLACE.latitude, PLACE.longitude, PLACE.elevation)
    day = date(2026, 6, 21)
    expected = getattr(astral.sun, event)(observer, date=day, tzinfo=BERLIN).timestamp() + offset
    spec = parse_schedule({"sun": event, "offset": offset, "tz": "Europe/Berlin"})
    midnight = local("2026-06-21T00:00")
    if expected < midnight:  # dawn - 15 min could fall before midnight: ask from earlier
        midnight -= 3 * 3600
    assert spec.next_after(midnight, PLACE) == pytest.approx(expected, abs=1e-6)
    assert spec.next_after(expected, PLACE) == pytest.approx(
        getattr(astral.sun, event)(observer, date=date(2026, 6, 22), tzinfo=BERLIN).timestamp()
        + offset,
        abs=1e-6,
    )
    # Sunset in Berlin on 21 June is near 21:33 local.
    if event == "sunset" and offset == 0:
        assert datetime.fromtimestamp(expected, BERLIN).strftime("%H") == "21"


def test_sun_needs_a_location_and_handles_polar_night() -> None:
    spec = parse_schedule({"sun": "sunrise"})
    assert spec.next_after(utc("2026-06-21T00:00"), None) is None
    tromso = Location(69.65, 18.96, 0.0, "Europe/Oslo")
    # No sunrise in Tromsø from late November to mid January: the next is in January.
    nxt = spec.next_after(utc("2026-12-10T00:00"), tromso)
    assert nxt is not None
    assert datetime.fromtimestamp(nxt, ZoneInfo("Europe/Oslo")).month == 1


def test_repeat_count_and_validity_window() -> None:
    spec = parse_schedule({"every": 3600, "repeat_count": 2})
    assert spec.next_after(0, runs=1) == 3600
    assert spec.next_after(0, runs=2) is None
    window = parse_schedule({
        "every": 3600, "tz": "Europe/Berlin",
        "valid": {"from": "2026-05-01T08:15:00", "until": "2026-05-01T10:15:00"},
    })  # fmt: skip
    start = local("2026-05-01T08:15")
    assert window.next_after(0) == start  # the interval counts from the window's start
    assert window.next_after(start) == start + 3600
    assert window.next_after(start + 3600) is None  # 10:15 is the (exclusive) end
    day = parse_schedule({"daily": "12:00", "valid": {"from": "2026-05-02", "until": "2026-05-03"}})
    assert day.next_after(0) == utc("2026-05-02T12:00")
    assert day.next_after(utc("2026-05-02T12:00")) == utc("2026-05-03T12:00")  # whole day
    assert day.next_after(utc("2026-05-03T12:00")) is None


def test_missed_run_policies() -> None:
    planned = local("2026-05-01T07:30")
    skip = parse_schedule({"daily": "07:30", "tz": "Europe/Berlin"})
    assert skip.missed_run(planned, planned + 300) is None
    once = parse_schedule({"daily": "07:30", "tz": "Europe/Berlin", "missed": "run_once",
                           "grace": 600})  # fmt: skip
    assert once.missed_run(planned, planned + 300) == planned
    assert once.missed_run(planned, planned + 601) is None
    assert once.missed_run(None, planned + 300) is None
    assert once.missed_run(planned + 86400, planned + 300) is None  # not due yet
    # Down for three days, grace a day: only the newest missed run, once.
    long = parse_schedule({"daily": "07:30", "tz": "Europe/Berlin", "missed": "run_once",
                           "grace": 86400})  # fmt: skip
    assert long.missed_run(planned, planned + 3 * 86400 + 60) == planned + 3 * 86400
    every = parse_schedule({"every": 60, "missed": "run_once", "grace": 30})
    assert every.missed_run(600, 3610) == 3600
    assert every.missed_run(600, 3650) is None
    assert every.missed_run(600, 3600) == 3600
    # An interval counted from its window's start; nothing once the window has ended.
    window = {"from": "1970-01-01T00:00:10Z", "until": "1970-01-01T02:00:00Z"}
    windowed = parse_schedule({"every": 60, "missed": "run_once", "grace": 100, "valid": window})
    assert windowed.missed_run(600, 3675) == 3670
    assert windowed.missed_run(600, 7230) == 7150  # the window's last run, 80 s ago
    assert windowed.missed_run(600, 7260) is None  # 110 s ago: outside the grace


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cron": "61 * * * *"}, "schedule.cron: bad cron expression '61 * * * *'"),
        ({"cron": "* * *"}, "schedule.cron: '* * *' has 3 fields; use 5"),
        ({"cron": "0 0 31 2 *"}, "schedule.cron: bad cron expression"),
        ({"cron": 5}, "schedule.cron: expected a cron expression"),
        (
            {"cron": "* * * * *", "tz": "Mars/Olympus"},
            "schedule.tz: unknown time zone 'Mars/Olympus'",
        ),
        ({"cron": "* * * * *", "tz": "../etc/passwd"}, "schedule.tz: unknown time zone"),
        ({"daily": "25:00"}, "schedule.daily: '25:00' is not a time HH:MM or HH:MM:SS"),
        ({"daily": "7:3"}, "schedule.daily: '7:3' is not a time"),
        ({"daily": "07:00", "weekdays": ["monday"]}, "schedule.weekdays[0]: unknown day 'monday'"),
        ({"once": "tomorrow"}, "schedule.once: 'tomorrow' is not an ISO date-time"),
        ({"every": 0}, "schedule.every: 0 is outside 1..31622400"),
        ({"every": True}, "schedule.every: expected a number of seconds"),
        ({"sun": "noon"}, "schedule.sun: unknown sun event 'noon'"),
        ({"sun": "sunset", "offset": 99999}, "schedule.sun.offset: 99999 is outside"),
        ({}, "schedule: needs exactly one of cron, every, daily, once, sun"),
        ({"cron": "* * * * *", "every": 5}, "(got cron, every)"),
        ({"every": 5, "weekdays": ["mon"]}, "schedule.weekdays: unknown key for a every schedule"),
        ({"every": 5, "missed": "later"}, "schedule.missed: expected 'skip' or 'run_once'"),
        ({"every": 5, "repeat_count": 0}, "schedule.repeat_count: expected a whole number >= 1"),
        (
            {"every": 5, "valid": {"from": "2026-05-02", "until": "2026-05-01"}},
            "schedule.valid: 'until' must be later than 'from'",
        ),
        ({"every": 5, "valid": {"since": "2026-05-02"}}, "schedule.valid: expected an object"),
        ({"every": 5, "tz": 1}, "schedule.tz: a time zone must be an IANA name"),
        ({"once": 20261224}, "schedule.once: expected an ISO date-time"),
        ({"daily": "07:00", "weekdays": []}, "schedule.weekdays: expected a list"),
        ([1, 2], "schedule: expected an object"),
    ],
)
def test_invalid_specs_are_rejected(spec: object, message: str) -> None:
    with pytest.raises(DefinitionError) as err:
        parse_schedule(spec)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_where_prefix_is_used() -> None:
    with pytest.raises(DefinitionError, match=r"^schedules\[2\]\.cron: "):
        parse_schedule({"cron": "bad"}, "schedules[2]")
