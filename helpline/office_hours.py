"""When operators are at work, per country: opening hours in the country's time zone, and closed
days (holidays). A handoff outside these hours tells the worker when operators are back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class OfficeHours:
    """Daily opening hours in `timezone`, closed on `closed_days`."""

    opens: dt.time
    closes: dt.time
    timezone: ZoneInfo
    closed_days: FrozenSet[dt.date]

    def is_open(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.timezone)
        return local.date() not in self.closed_days and self.opens <= local.time() < self.closes

    def next_opening(self, moment: dt.datetime) -> dt.datetime:
        """The next time operators are at work, from `moment` on (as a local time)."""
        local = moment.astimezone(self.timezone)
        day = local.date()
        for _ in range(400):
            opening = dt.datetime.combine(day, self.opens, self.timezone)
            if day not in self.closed_days and local < dt.datetime.combine(day, self.closes, self.timezone):
                return max(opening, local)
            day += dt.timedelta(days=1)
        raise ValueError("no opening day within a year")


def parse_hours(text: str) -> tuple:
    """"11:00-21:00" -> (time(11), time(21)); "00:00-24:00" is the whole day."""
    start_text, end_text = (part.strip() for part in text.split("-"))
    start = dt.time.fromisoformat(start_text)
    end = dt.time.max if end_text == "24:00" else dt.time.fromisoformat(end_text)
    if end <= start:
        raise ValueError(f"office hours {text!r}: closing must be after opening")
    return start, end


def office_hours(hours: str, timezone: str, closed_days: Optional[list] = None) -> OfficeHours:
    opens, closes = parse_hours(hours)
    return OfficeHours(opens, closes, ZoneInfo(timezone), frozenset(dt.date.fromisoformat(d) for d in closed_days or []))


def describe_return(opening: dt.datetime, now: dt.datetime, language: str) -> str:
    """When operators are back, as a worker reads it: "明天11:00", "11:00 ngày mai"."""
    local_now = now.astimezone(opening.tzinfo)
    days = (opening.date() - local_now.date()).days
    clock = opening.strftime("%H:%M")
    words: Dict[str, Dict[int, str]] = {"zh": {0: "今天", 1: "明天", 2: "后天"}, "vi": {0: "hôm nay", 1: "ngày mai", 2: "ngày kia"}}
    if language == "zh":
        day = words["zh"].get(days, f"{opening.month}月{opening.day}日")
        return f"{day}{clock}"
    day = words["vi"].get(days, f"ngày {opening.day}/{opening.month}")
    return f"{clock} {day}"
