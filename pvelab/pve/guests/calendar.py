"""PVE's calendar events (the schedules of backup and replication jobs, pvescheduler's): `21:00`,
`mon..fri 02:30`, `sat,sun 0/6:00`, `*/15` (minutes), and `minutely`, `hourly`, `daily`, `weekly`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALIASES = {"minutely": "*:*", "hourly": "*:0", "daily": "0:0", "weekly": "mon 0:0"}


class CalendarError(ValueError):
    pass


def _values(spec: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        found = re.fullmatch(r"(\*|\d+)(?:\.\.(\d+))?(?:/(\d+))?", part)
        if not found:
            raise CalendarError(f"unable to parse calendar event '{spec}'")
        start = low if found.group(1) == "*" else int(found.group(1))
        end = int(found.group(2)) if found.group(2) else (high if found.group(1) == "*" or found.group(3) else start)
        step = int(found.group(3) or 1)
        if not low <= start <= high or not low <= end <= high:
            raise CalendarError(f"value out of range in calendar event '{spec}'")
        out.update(range(start, end + 1, step))
    return out


def _weekdays(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("..")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise CalendarError(f"unable to parse weekday specification '{spec}'")
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return out


def parse_schedule(schedule: str) -> tuple[set[int], set[int], set[int]]:
    """(weekdays, hours, minutes) a schedule allows."""
    words = ALIASES.get(schedule.strip(), schedule.strip()).split()
    days = set(range(7))
    if words and words[0][:3] in WEEKDAYS:
        days = _weekdays(words.pop(0))
    if len(words) != 1:
        raise CalendarError(f"unable to parse calendar event '{schedule}'")
    hour_spec, sep, minute_spec = words[0].partition(":")
    if not sep:  # a bare minute specification (`*/15`): every hour
        hour_spec, minute_spec = "*", hour_spec
    return days, _values(hour_spec, 0, 23), _values(minute_spec, 0, 59)


def next_event(schedule: str, after: float) -> int:
    """The first minute after `after` the schedule matches (epoch seconds)."""
    days, hours, minutes = parse_schedule(schedule)
    when = datetime.fromtimestamp(after).replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(8 * 24 * 60):
        if when.weekday() in days and when.hour in hours and when.minute in minutes:
            return int(when.timestamp())
        when += timedelta(minutes=1)
    raise CalendarError(f"calendar event '{schedule}' never happens")
