"""``alignment``: the sales force alignment, a full file each quarter.

One row per zip3: its territory, district and region and the territory's rep (blank when the
territory is vacant that quarter), effective from the quarter's first day. Each quarter re-aligns
a few boundary zip3s to a neighbouring territory and the rep roster turns over a little, so
consecutive files differ. The partition folder is the quarter's first month (YYYY-01/04/07/10).
"""

from __future__ import annotations

from datetime import date

import numpy as np

from ..geography import ZIP3, ZIP3_STATE
from ..output import Landing, Source, pick
from ..sales_force import SalesForce

SOURCE = Source(
    name="alignment",
    cadence="quarterly",
    partition_format="%Y-%m",
    columns=(
        "zip3",
        "state",
        "territory",
        "district",
        "region",
        "rep_id",
        "rep_name",
        "effective_date",
    ),
    description="Sales force alignment: zip3 -> territory -> district -> region, and the reps.",
)


def write(out: Landing, force: SalesForce, quarters: list[date]) -> None:
    names = force.rep_names()
    for quarter in quarters:
        a = force.alignments[quarter]
        territory = a.territory
        rep = a.rep[territory]
        select = f"""
            select lpad(zip3::varchar, 3, '0') as zip3,
                   {pick(ZIP3_STATE, "i")} as state,
                   'T' || lpad((territory + 1)::varchar, 3, '0') as territory,
                   'D' || lpad((district + 1)::varchar, 3, '0') as district,
                   'RG' || lpad((region + 1)::varchar, 2, '0') as region,
                   case when rep >= 0 then 'REP' || rep_id::varchar end as rep_id,
                   case when rep >= 0 then {pick(names, "rep")} end as rep_name,
                   date '{quarter.isoformat()}' as effective_date
            from t
        """
        columns = {
            "i": np.arange(len(ZIP3)),
            "zip3": ZIP3,
            "territory": territory,
            "district": a.district[territory],
            "region": a.region[territory],
            "rep": rep,
            "rep_id": np.where(rep >= 0, force.rep_id[np.maximum(rep, 0)], 0),
        }
        out.write(SOURCE, quarter, columns, select)
