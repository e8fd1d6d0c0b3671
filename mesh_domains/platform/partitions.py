"""Cadence partitions: one time window per delivery period, the same for sources and ports.

A landing source's cadence (``landing.yaml``) and a port's ``partition`` (``domain.yaml``) are
turned into the same Dagster ``TimeWindowPartitionsDefinition``, so a week of Rx is one
partition from the landing zone to the last port that keeps weeks apart:

============ ======================= ============ ==========================================
cadence      window                  key format   landing folder of the period
============ ======================= ============ ==========================================
daily        one day                 %Y-%m-%d     the day
weekly       7 days ending on the    %Y-%m-%d     the week's LAST day (e.g. the Saturday a
             declared weekday        (first day)  week of Rx ends on)
monthly      calendar month          %Y-%m        the month
quarterly    calendar quarter        %Y-%m        the quarter's first month
============ ======================= ============ ==========================================

Dagster names a time window by its first day, so a weekly partition key is the Sunday that
starts a week ending on Saturday; :func:`key_for_folder` and :func:`window` convert. Every
definition is derived from descriptors only, so a consumer's external spec of a producer's port
carries the producer's ``partitions_def`` without importing the producer's code.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

CADENCES = ("daily", "weekly", "monthly", "quarterly")
UNPARTITIONED_CADENCES = ("rarely",)  # delivered now and then: one partition-less asset
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PARTITIONS_START = date(2025, 1, 1)  # the first period any source or port can hold
KEY_FORMATS = {"daily": "%Y-%m-%d", "weekly": "%Y-%m-%d", "monthly": "%Y-%m", "quarterly": "%Y-%m"}


@dataclass(frozen=True)
class Cadence:
    """How a source or a port is cut in time."""

    cadence: str
    week_ends_on: int = 5  # date.weekday() of a week's last day (weekly only): Saturday

    @property
    def key_format(self) -> str:
        return KEY_FORMATS[self.cadence]

    def describe(self) -> str:
        if self.cadence == "weekly":
            return f"weekly (weeks ending {WEEKDAYS[self.week_ends_on].capitalize()})"
        return self.cadence


def parse_cadence(cadence: str, week_ends_on: str | int | None = None) -> Cadence:
    """A :class:`Cadence` from descriptor text; raises ``ValueError`` naming what is wrong."""
    if cadence not in CADENCES:
        raise ValueError(f"cadence {cadence!r} is not one of {', '.join(CADENCES)}")
    if week_ends_on is None:
        return Cadence(cadence)
    if isinstance(week_ends_on, int):
        return Cadence(cadence, week_ends_on)
    if str(week_ends_on).lower() not in WEEKDAYS:
        raise ValueError(f"week_ends_on {week_ends_on!r} is not a weekday")
    return Cadence(cadence, WEEKDAYS.index(str(week_ends_on).lower()))


@lru_cache(maxsize=64)
def partitions_def(cadence: Cadence):
    """The Dagster partitions of a cadence (cached: one object per cadence per process)."""
    import dagster as dg

    start = PARTITIONS_START
    if cadence.cadence == "daily":
        cron = "0 0 * * *"
    elif cadence.cadence == "weekly":
        first_day = (cadence.week_ends_on + 1) % 7  # date.weekday() a week starts on
        cron = f"0 0 * * {(first_day + 1) % 7}"  # cron counts Sunday as 0
        start = start + timedelta(days=(first_day - start.weekday()) % 7)
    elif cadence.cadence == "monthly":
        cron = "0 0 1 * *"
    else:
        cron = "0 0 1 1,4,7,10 *"
    # end_offset=1: the period under way is a partition too (a delivery may come early)
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron,
        start=start.strftime(cadence.key_format),
        fmt=cadence.key_format,
        end_offset=1,
    )


def window(cadence: Cadence, key: str) -> tuple[date, date]:
    """The first and last day (inclusive) of the partition ``key``."""
    first = datetime.strptime(key, cadence.key_format).date()
    if cadence.cadence == "daily":
        return first, first
    if cadence.cadence == "weekly":
        return first, first + timedelta(days=6)
    months = 1 if cadence.cadence == "monthly" else 3
    last_month = first.month + months - 1
    year = first.year + (last_month - 1) // 12
    month = (last_month - 1) % 12 + 1
    return first, date(year, month, calendar.monthrange(year, month)[1])


def key_for_day(cadence: Cadence, day: date) -> str:
    """The key of the partition holding ``day``."""
    if cadence.cadence == "daily":
        first = day
    elif cadence.cadence == "weekly":
        first_weekday = (cadence.week_ends_on + 1) % 7
        first = day - timedelta(days=(day.weekday() - first_weekday) % 7)
    elif cadence.cadence == "monthly":
        first = day.replace(day=1)
    else:
        first = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return first.strftime(cadence.key_format)


def key_for_folder(cadence: Cadence, folder_day: date) -> str:
    """The partition key of a landing folder's date (weekly folders name the week's end)."""
    return key_for_day(cadence, folder_day)


def keys_between(cadence: Cadence, first: date, last: date) -> list[str]:
    """Every partition key whose window overlaps ``first..last``, oldest first."""
    keys, day = [], first
    while day <= last:
        key = key_for_day(cadence, day)
        keys.append(key)
        day = window(cadence, key)[1] + timedelta(days=1)
    return keys


def map_keys(source: Cadence, target: Cadence, keys: list[str]) -> list[str]:
    """Keys of ``target`` whose windows overlap the windows of ``keys`` of ``source`` (a week
    that straddles two months feeds both)."""
    out: dict[str, None] = {}
    for key in keys:
        first, last = window(source, key)
        out.update(dict.fromkeys(keys_between(target, first, last)))
    return sorted(out)
