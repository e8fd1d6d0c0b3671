"""``ama_physician``: the AMA-style Physician Masterfile, a full snapshot every month.

The clean reference: unique ME numbers and valid NPIs that never change; month on month ~2%
newly licensed physicians arrive, some change status (active, inactive, retired, deceased) and
some move. The roster of the latest month is the one every other source is drawn from.
"""

from __future__ import annotations

from datetime import date

from ..geography import ZIP3, ZIP3_CITY, ZIP3_STATE
from ..output import Landing, Source, pick
from ..people import (
    FIRST_NAMES,
    LAST_NAMES,
    SPECIALTY_NAMES,
    STATUSES,
    STREET_TYPES,
    STREETS,
    Roster,
    RosterBook,
)
from ..streams import stream

SOURCE = Source(
    name="ama_physician",
    cadence="monthly",
    partition_format="%Y-%m",
    columns=(
        "me_number",
        "npi",
        "first_name",
        "middle_initial",
        "last_name",
        "specialty",
        "address_line",
        "city",
        "state",
        "zip",
        "status",
    ),
    description="AMA Physician Masterfile, full snapshot each month.",
)

SELECT = f"""
select lpad(me::varchar, 11, '0') as me_number,
       npi::varchar as npi,
       {pick(FIRST_NAMES, '"first"')} as first_name,
       case when middle >= 0 then chr(65 + middle) end as middle_initial,
       {pick(LAST_NAMES, '"last"')} as last_name,
       {pick(SPECIALTY_NAMES, "specialty")} as specialty,
       street_no::varchar || ' ' || {pick(STREETS, "street")} || ' '
           || {pick(STREET_TYPES, "street_type")}
           || case when suite > 0 then ' Suite ' || suite::varchar else '' end as address_line,
       {pick(ZIP3_CITY, "zip3")} as city,
       {pick(ZIP3_STATE, "zip3")} as state,
       {pick([f"{z:03d}" for z in ZIP3], "zip3")} || lpad(zip_tail::varchar, 2, '0') as zip,
       {pick(STATUSES, "status")} as status
from t
"""


def write(
    out: Landing, seed: int, physicians: int, months: list[date]
) -> tuple[Roster, RosterBook]:
    """Write one snapshot per month; returns the latest roster and the book that drew it."""
    book = RosterBook(stream(seed, SOURCE.name))
    roster = book.first_month(physicians)
    for i, month in enumerate(months):
        if i:
            book.next_month(roster)
        out.write(SOURCE, month, roster.columns(), SELECT)
    return roster, book
