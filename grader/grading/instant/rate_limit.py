"""Rate limits on graded submissions: "<n> per [<k>] <unit>", counted over a sliding window.

A sliding window (the last 24 hours for "per day") rather than calendar days: a student learns
exactly when the next graded attempt is allowed, and nobody gets a double allowance around
midnight in some time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_TEXT = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    count: int
    window: timedelta
    text: str


def parse_rate_limit(value: object) -> RateLimit | None:
    """``"5 per day"``, ``"1 per 10 minutes"``, ``"3/hour"``; ``None``/``"none"``: no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "unlimited", "")):
        return None
    match = _TEXT.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a rate limit: write e.g. '5 per day', '1 per 10 minutes' or 'none'")
    count, amount, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3).lower()
    if count < 1 or amount < 1:
        raise ValueError(f"{value!r}: the number of submissions and the period must be at least 1")
    return RateLimit(count, timedelta(seconds=amount * UNITS[unit]), " ".join(value.split()))


@dataclass(frozen=True)
class Decision:
    """Whether a submission made at ``now`` is graded now, and what is left afterwards."""

    graded_now: bool
    attempts_left: int | None  # None: no limit
    next_graded_at: datetime | None  # when the next graded attempt is allowed; None: now


def decide(limit: RateLimit | None, graded: list[datetime], now: datetime) -> Decision:
    """The decision for one more submission at ``now`` given the times of the graded ones."""
    if limit is None:
        return Decision(True, None, None)
    recent = sorted(when for when in graded if when > now - limit.window)
    graded_now = len(recent) < limit.count
    if graded_now:
        recent.append(now)
    return Decision(graded_now, max(limit.count - len(recent), 0), next_graded_at(limit, recent, now))


def allowance(limit: RateLimit | None, graded: list[datetime], now: datetime) -> tuple[int | None, datetime | None]:
    """(attempts left, when the next graded attempt is allowed or None for now), before submitting."""
    if limit is None:
        return None, None
    recent = sorted(when for when in graded if when > now - limit.window)
    return max(limit.count - len(recent), 0), next_graded_at(limit, recent, now)


def next_graded_at(limit: RateLimit, recent: list[datetime], now: datetime) -> datetime | None:
    if len(recent) < limit.count:
        return None
    # The window frees a slot when the oldest of the last `count` graded submissions leaves it.
    return recent[len(recent) - limit.count] + limit.window
