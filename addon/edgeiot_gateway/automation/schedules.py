"""Schedule specs: parsing and the next run time of each kind (cron, every, daily, once, sun).

Times are Unix seconds; each kind works in its IANA zone (the spec's `tz`, else the location's,
else UTC). Fixed-time schedules follow Debian cron across DST changes (docs/automation.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import astral
import astral.sun
from cronsim import CronSim, CronSimError

from .errors import DefinitionError
from .location import Location

KINDS = ("cron", "every", "daily", "once", "sun")
COMMON_KEYS = ("tz", "missed", "grace", "repeat_count", "valid")
EXTRA_KEYS = {"cron": (), "every": (), "daily": ("weekdays",), "once": (), "sun": ("offset",)}
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbers 0..6
SUN_EVENTS = ("sunrise", "sunset", "dawn", "dusk")
MAX_CRON_CHARS = 256
MAX_EVERY = 366 * 86400
MAX_SUN_OFFSET = 12 * 3600
MAX_GRACE = 7 * 86400
DEFAULT_GRACE = 600.0
# Candidates a fixed-time cron may skip (ones inside a repeated hour that already passed).
MAX_CRON_STEPS = 10_000
# Runs `missed_run` looks at inside the grace period before giving up on finding the newest.
MAX_CATCHUP_STEPS = 10_000
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")

Missed = Literal["skip", "run_once"]


def zone(name: str, where: str) -> ZoneInfo:
    """The IANA zone `name`, or DefinitionError naming `where`."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise DefinitionError(f"{where}: a time zone must be an IANA name like 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DefinitionError(f"{where}: unknown time zone {name!r}") from None


def _is_real(aware: datetime) -> bool:
    back = aware.astimezone(UTC).astimezone(aware.tzinfo)
    return back.replace(tzinfo=None) == aware.replace(tzinfo=None)


def local_to_unix(naive: datetime, tz: ZoneInfo) -> float:
    """A wall-clock time in `tz`, the Debian cron way: a time in a repeated hour is its first
    occurrence; a time in a skipped hour is the first real minute after the jump."""
    aware = naive.replace(tzinfo=tz, fold=0)
    if _is_real(aware):
        return aware.timestamp()
    probe = naive.replace(second=0, microsecond=0)
    for _ in range(48 * 60):  # zone gaps are at most a day long
        probe += timedelta(minutes=1)
        if _is_real(candidate := probe.replace(tzinfo=tz)):
            return candidate.timestamp()
    raise ValueError(f"{naive} has no real time in {tz}")


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DefinitionError(f"{where}: expected a number of seconds, got {value!r}")
    if not low <= value <= high:
        raise DefinitionError(f"{where}: {value} is outside {low:.15g}..{high:.15g}")
    return float(value)


def _local_datetime(value: Any, where: str, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time: naive (wall clock of the schedule's zone) or with an offset."""
    if not isinstance(value, str) or len(value) > 64:
        raise DefinitionError(f"{where}: expected an ISO date-time like '2026-12-24T18:00:00'")
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value) + timedelta(days=1 if end_of_day else 0)
            parsed = datetime.combine(day, time())
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise DefinitionError(f"{where}: {value!r} is not an ISO date-time ({err})") from None
    return parsed


def _unix(moment: datetime, tz: ZoneInfo) -> float:
    return moment.timestamp() if moment.tzinfo is not None else local_to_unix(moment, tz)


class _Cron:
    """A cron expression: 5 fields, or 6 with seconds first."""

    def __init__(self, expr: Any, where: str) -> None:
        if not isinstance(expr, str) or not expr.strip() or len(expr) > MAX_CRON_CHARS:
            raise DefinitionError(f"{where}: expected a cron expression like '*/5 * * * *'")
        parts = expr.split()
        if len(parts) not in (5, 6):
            raise DefinitionError(
                f"{where}: {expr!r} has {len(parts)} fields; use 5 (minute hour day month "
                "weekday) or 6 (second first)"
            )
        try:
            CronSim(expr, datetime(2026, 1, 1))
        except CronSimError as err:
            raise DefinitionError(f"{where}: bad cron expression {expr!r}: {err}") from None
        self.expr = " ".join(parts)
        minute, hour = parts[-5], parts[-4]
        # Debian cron: only jobs with neither minute nor hour starting with '*' get DST care.
        self.fixed_time = not minute.startswith("*") and not hour.startswith("*")

    def next_after(self, t: float, tz: ZoneInfo) -> float | None:
        start = datetime.fromtimestamp(t, tz)
        try:
            if not self.fixed_time:
                return next(CronSim(self.expr, start)).timestamp()
            # Walk wall-clock times; skip those already passed (a repeated hour's first pass).
            walk = CronSim(self.expr, start.replace(tzinfo=None))
            for _ in range(MAX_CRON_STEPS):
                if (unix := local_to_unix(next(walk), tz)) > t:
                    return unix
        except StopIteration:
            pass
        return None


class _Every:
    """A fixed interval, counted from the validity start or else the Unix epoch."""

    def __init__(self, seconds: Any, where: str) -> None:
        self.seconds = _number(seconds, where, 1, MAX_EVERY)

    def next_after(self, t: float, anchor: float) -> float:
        return anchor + (math.floor((t - anchor) / self.seconds) + 1) * self.seconds


class _Once:
    def __init__(self, value: Any, where: str) -> None:
        self.at = _local_datetime(value, where)

    def next_after(self, t: float, tz: ZoneInfo) -> float | None:
        at = _unix(self.at, tz)
        return at if at > t else None


class _Sun:
    def __init__(self, event: Any, offset: Any, where: str) -> None:
        if event not in SUN_EVENTS:
            names = "|".join(SUN_EVENTS)
            raise DefinitionError(f"{where}: unknown sun event {event!r}; use {names}")
        self.event: Callable[..., datetime] = getattr(astral.sun, event)
        self.offset = _number(offset, f"{where}.offset", -MAX_SUN_OFFSET, MAX_SUN_OFFSET)

    def next_after(self, t: float, tz: ZoneInfo, place: Location | None) -> float | None:
        if place is None:
            return None
        observer = astral.Observer(place.latitude, place.longitude, place.elevation)
        day = datetime.fromtimestamp(t - self.offset, tz).date() - timedelta(days=1)
        for _ in range(368):  # polar days and nights: the next event may be months away
            try:
                at = self.event(observer, date=day, tzinfo=tz).timestamp() + self.offset
            except ValueError:  # the sun does not reach that elevation on this day
                at = -math.inf
            if at > t:
                return at
            day += timedelta(days=1)
        return None


Rule = _Cron | _Every | _Once | _Sun


@dataclass(slots=True)
class ScheduleSpec:
    """A validated schedule: when it runs, and what happens to runs missed while down."""

    kind: str
    rule: Rule
    tz: str | None = None
    missed: Missed = "skip"
    grace: float = DEFAULT_GRACE
    repeat_count: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def zone(self, location: Location | None) -> ZoneInfo:
        """The zone the schedule's wall-clock times are in."""
        return ZoneInfo(self.tz or (location.tz if location else "UTC"))

    def next_after(self, t: float, location: Location | None = None, runs: int = 0) -> float | None:
        """The first planned run strictly after `t`, or None when there is none (ended,
        `repeat_count` runs done, past the validity window, or a sun event without location)."""
        if self.repeat_count is not None and runs >= self.repeat_count:
            return None
        tz = self.zone(location)
        start = None if self.valid_from is None else _unix(self.valid_from, tz)
        if start is not None:
            t = max(t, start - 0.001)
        at: float | None
        if isinstance(self.rule, _Every):
            at = self.rule.next_after(t, start or 0.0)
        elif isinstance(self.rule, _Sun):
            at = self.rule.next_after(t, tz, location)
        else:
            at = self.rule.next_after(t, tz)
        if at is None or (self.valid_until is not None and at >= _unix(self.valid_until, tz)):
            return None
        return at

    def missed_run(
        self,
        last_planned: float | None,
        now: float,
        location: Location | None = None,
        runs: int = 0,
    ) -> float | None:
        """The run to do now for runs missed while the gateway was down, or None.

        `last_planned` is the next run that was planned before the stop. With `skip`, nothing;
        with `run_once`, the newest planned run at or after `last_planned` that is at most
        `grace` seconds old runs once (older missed runs are dropped).
        """
        if last_planned is None or last_planned > now or self.missed == "skip":
            return None
        start = max(last_planned, now - self.grace)
        if isinstance(self.rule, _Every):  # the newest run at or before now, without walking
            cap = now
            if self.valid_until is not None:
                cap = min(now, _unix(self.valid_until, self.zone(location)) - 0.001)
            newest = self.next_after(cap - self.rule.seconds, location, runs)
            return newest if newest is not None and start <= newest <= cap else None
        latest = None
        cursor = start - 0.001
        for _ in range(MAX_CATCHUP_STEPS):
            at = self.next_after(cursor, location, runs)
            if at is None or at > now:
                break
            latest = cursor = at
        return latest


def _check_keys(spec: Mapping[str, Any], where: str) -> str:
    kinds = [key for key in KINDS if key in spec]
    if len(kinds) != 1:
        raise DefinitionError(
            f"{where}: needs exactly one of {', '.join(KINDS)}"
            + (f" (got {', '.join(kinds)})" if kinds else "")
        )
    allowed = {kinds[0], *COMMON_KEYS, *EXTRA_KEYS[kinds[0]]}
    for key in spec:
        if key not in allowed:
            raise DefinitionError(f"{where}.{key}: unknown key for a {kinds[0]} schedule")
    return kinds[0]


def _daily_cron(spec: Mapping[str, Any], where: str) -> _Cron:
    value = spec["daily"]
    match = TIME_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise DefinitionError(f"{where}.daily: {value!r} is not a time HH:MM or HH:MM:SS")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    days = spec.get("weekdays")
    if days is None:
        weekdays = "*"
    else:
        if not isinstance(days, list) or not days:
            raise DefinitionError(f"{where}.weekdays: expected a list like ['mon', 'fri']")
        for index, day in enumerate(days):
            if day not in WEEKDAYS:
                raise DefinitionError(
                    f"{where}.weekdays[{index}]: unknown day {day!r}; use {', '.join(WEEKDAYS)}"
                )
        weekdays = ",".join(sorted({str(WEEKDAYS.index(day)) for day in days}))
    return _Cron(f"{second} {minute} {hour} * * {weekdays}", f"{where}.daily")


def parse_schedule(spec: Mapping[str, Any], where: str = "schedule") -> ScheduleSpec:
    """Validate a schedule mapping (forms in docs/automation.md); DefinitionError names the key."""
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"{where}: expected an object")
    kind = _check_keys(spec, where)
    tz_name = spec.get("tz")
    if tz_name is not None:
        zone(tz_name, f"{where}.tz")
    rule: Rule
    if kind == "cron":
        rule = _Cron(spec["cron"], f"{where}.cron")
    elif kind == "every":
        rule = _Every(spec["every"], f"{where}.every")
    elif kind == "daily":
        rule = _daily_cron(spec, where)
    elif kind == "once":
        rule = _Once(spec["once"], f"{where}.once")
    else:
        rule = _Sun(spec["sun"], spec.get("offset", 0), f"{where}.sun")
    missed = spec.get("missed", "skip")
    if missed not in ("skip", "run_once"):
        raise DefinitionError(f"{where}.missed: expected 'skip' or 'run_once', got {missed!r}")
    grace = _number(spec.get("grace", DEFAULT_GRACE), f"{where}.grace", 0, MAX_GRACE)
    repeat_count = spec.get("repeat_count")
    if repeat_count is not None and (
        isinstance(repeat_count, bool) or not isinstance(repeat_count, int) or repeat_count < 1
    ):
        raise DefinitionError(f"{where}.repeat_count: expected a whole number >= 1 or null")
    valid_from, valid_until = _validity(spec.get("valid"), f"{where}.valid")
    return ScheduleSpec(kind, rule, tz_name, missed, grace, repeat_count, valid_from, valid_until)


def _validity(valid: Any, where: str) -> tuple[datetime | None, datetime | None]:
    if valid is None:
        return None, None
    if not isinstance(valid, Mapping) or not set(valid) <= {"from", "until"}:
        raise DefinitionError(f"{where}: expected an object with 'from' and/or 'until'")
    start = _local_datetime(valid["from"], f"{where}.from") if "from" in valid else None
    end = _local_datetime(valid["until"], f"{where}.until", True) if "until" in valid else None
    utc = ZoneInfo("UTC")
    if start is not None and end is not None and _unix(end, utc) <= _unix(start, utc):
        raise DefinitionError(f"{where}: 'until' must be later than 'from'")
    return start, end
