"""``rx_weekly``: subnational prescriber-level Rx (IQVIA-style), one file per week ending Saturday.

One row per prescriber, basket product and week: NRx and TRx, and whether the figure was
observed (``actual``) or projected by the vendor for pharmacies it does not see. ~3% of the
prescribers are valid NPIs the AMA file does not know. Weekly TRx per prescriber and product
is in the single digits to tens, capped at a few hundred at every scale.
"""

from __future__ import annotations

from ..output import Landing, Source, pick
from ..prescribing import Prescribers, RxWeek
from ..products import PRODUCTS

SOURCE = Source(
    name="rx_weekly",
    cadence="weekly",
    partition_format="%Y-%m-%d",
    columns=("prescriber_npi", "product", "week_ending", "nrx", "trx", "data_type"),
    description="Prescriber-level NRx/TRx for the market basket, one week ending Saturday.",
)


def write(out: Landing, rx: RxWeek, who: Prescribers) -> None:
    select = f"""
        select npi::varchar as prescriber_npi,
               {pick(PRODUCTS, "product")} as product,
               date '{rx.week_ending.isoformat()}' as week_ending,
               nrx, trx,
               case when projected then 'projected' else 'actual' end as data_type
        from t
    """
    columns = {
        "npi": who.npi[rx.prescriber],
        "product": rx.product,
        "nrx": rx.nrx,
        "trx": rx.trx,
        "projected": rx.projected,
    }
    out.write(SOURCE, rx.week_ending, columns, select)
