"""``generate``: write the whole landing zone of the pharma example, deterministic by seed.

The scale sets the number of physicians (5,000 per unit; scale 200 is about the US physician
population) and everything that follows from them: prescribers, CRM accounts, territories,
plans, patients and campaign audiences. Per-physician volumes do not depend on the scale, so
rows grow linearly with it. Partitions are drawn and written one at a time (the largest single
array is one week of claims), so memory is bounded by the largest partition, not by the total.

| source | cadence | partitions (defaults) |
| --- | --- | --- |
| ama_physician, formulary | monthly | ``months`` (3) months up to October 2026 |
| crm_accounts, field_calls, npp_engagement | daily | ``days`` (14) days up to 2026-10-31 |
| rx_weekly, claims | weekly, ending Saturday | ``weeks`` (8) weeks up to 2026-10-31 |
| rebates, alignment | quarterly | ``quarters`` (2) quarters up to Q4 2026 |
| product_master | rarely | one release |

Rows at the default windows (measured, see pharma_example/README.md): scale 1 writes 54k Rx
rows; scale 200 writes 10.8M Rx rows, 11.0M claims and 29M rows in all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from . import calendar
from .output import Landing
from .payers import formulary as formulary_listings
from .payers import plan_book
from .people import physicians_for
from .prescribing import prescribers, rx_week
from .sales_force import sales_force
from .sources import (
    SOURCES,
    alignment,
    ama_physician,
    claims,
    crm_accounts,
    field_calls,
    formulary,
    npp_engagement,
    product_master,
    rebates,
    rx_weekly,
)


@dataclass
class Generated:
    """What a run wrote: files, rows and seconds per source, in :data:`SOURCES` order."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def generate(
    landing_dir: Path,
    scale: float = 1.0,
    seed: int = 42,
    months: int = 3,
    days: int = 14,
    weeks: int = 8,
    quarters: int = 2,
) -> dict[str, list[Path]]:
    """Write every source's deliveries under ``landing_dir``; returns the files per source.

    ``scale`` sets the number of physicians (``max(20, round(5000 * scale))`` in the first
    month). Files at the same paths are overwritten; nothing else is touched.
    """
    return generate_landing(landing_dir, scale, seed, months, days, weeks, quarters).files


def generate_landing(
    landing_dir: Path,
    scale: float = 1.0,
    seed: int = 42,
    months: int = 3,
    days: int = 14,
    weeks: int = 8,
    quarters: int = 2,
) -> Generated:
    """:func:`generate`, with the rows written and the seconds spent per source."""
    if scale <= 0 or min(months, days, weeks, quarters) < 1:
        raise ValueError("scale must be > 0 and months/days/weeks/quarters >= 1")
    started = time.perf_counter()
    month_list, day_list = calendar.month_starts(months), calendar.days(days)
    week_list, quarter_list = calendar.week_endings(weeks), calendar.quarter_starts(quarters)
    if day_list[0] < npp_engagement.FIRST_CAMPAIGN:
        raise ValueError(f"days reach before {npp_engagement.FIRST_CAMPAIGN}, when NPP starts")
    n_physicians = physicians_for(scale)
    out = Landing(landing_dir)
    try:
        with out.timed(ama_physician.SOURCE):
            roster, book = ama_physician.write(out, seed, n_physicians, month_list)
        with out.timed(alignment.SOURCE):
            force = sales_force(seed, n_physicians, min(quarter_list[0], day_list[0]), day_list[-1])
            alignment.write(out, force, quarter_list)
        with out.timed(crm_accounts.SOURCE):
            accounts = crm_accounts.write(out, seed, roster, force, day_list)
        with out.timed(rx_weekly.SOURCE):
            who = prescribers(seed, roster, book)
        with out.timed(formulary.SOURCE):
            plans = plan_book(seed, scale, n_physicians)
            first_fill = week_list[0] - timedelta(days=6)
            listings = formulary_listings(
                seed, plans, min(month_list[0], first_fill), month_list[-1]
            )
            formulary.write(out, plans, listings, month_list)
        adjudicator = claims.Claims(seed, plans, listings)
        for week in week_list:
            with out.timed(rx_weekly.SOURCE):
                rx = rx_week(seed, who, week)
                rx_weekly.write(out, rx, who)
            with out.timed(claims.SOURCE):
                adjudicator.write_week(out, rx, who)
        with out.timed(rebates.SOURCE):
            rebates.write(out, seed, quarter_list)
        with out.timed(field_calls.SOURCE):
            field_calls.write(out, seed, accounts, who, force, day_list)
        with out.timed(npp_engagement.SOURCE):
            npp_engagement.write(out, seed, roster, day_list)
        with out.timed(product_master.SOURCE):
            product_master.write(out)
    finally:
        out.close()
    return Generated(
        files={name: out.files[name] for name in SOURCES},
        rows={name: out.rows[name] for name in SOURCES},
        seconds={name: out.seconds[name] for name in SOURCES},
        elapsed=time.perf_counter() - started,
    )
