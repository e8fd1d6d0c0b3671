"""The example's calendar: every date is anchored on :data:`ANCHOR_DATE`, never on "today".

Each source delivers on its own cadence; these functions list the partitions of each cadence,
oldest first, ending with the one that holds the anchor date. Anchoring keeps the files
byte-identical from one run to the next.
"""

from __future__ import annotations

from datetime import date, timedelta

ANCHOR_DATE = date(2026, 10, 31)  # the last day of data: a Saturday, the last Rx week's end
WEEK_ENDS_ON = 5  # date.weekday() of Saturday: syndicated Rx and claims weeks end on Saturday


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or before, if negative) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def quarter_start(day: date) -> date:
    """The first day of the calendar quarter holding ``day`` (January, April, July, October)."""
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def month_starts(months: int) -> list[date]:
    """First days of the ``months`` months ending with the anchor's month."""
    last = month_start(ANCHOR_DATE)
    return [add_months(last, -k) for k in range(months - 1, -1, -1)]


def quarter_starts(quarters: int) -> list[date]:
    """First days of the ``quarters`` calendar quarters ending with the anchor's quarter."""
    last = quarter_start(ANCHOR_DATE)
    return [add_months(last, -3 * k) for k in range(quarters - 1, -1, -1)]


def days(count: int) -> list[date]:
    """The ``count`` calendar days ending on the anchor date."""
    return [ANCHOR_DATE - timedelta(days=d) for d in range(count - 1, -1, -1)]


def week_endings(weeks: int) -> list[date]:
    """The ``weeks`` Saturdays up to the anchor date (a week runs Sunday to Saturday)."""
    last = ANCHOR_DATE - timedelta(days=(ANCHOR_DATE.weekday() - WEEK_ENDS_ON) % 7)
    return [last - timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]


def months_between(first: date, last: date) -> list[date]:
    """First days of every month from ``first``'s month to ``last``'s month, inclusive."""
    out, month = [], month_start(first)
    while month <= last:
        out.append(month)
        month = add_months(month, 1)
    return out
