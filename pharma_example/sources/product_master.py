"""``product_master``: the basket's NDCs, delivered rarely (one release, one partition).

One row per NDC (11 digits, 5-4-2): brand, molecule, manufacturer, strength, package size,
wholesale acquisition cost per unit, the market basket and whether the brand is Meridian's.
Rx names products by brand, claims by NDC: this file is how the two meet.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from ..output import Landing, Source, pick
from ..products import MARKET_BASKET, NDCS, OWN_PRODUCTS, PRODUCT_INFO

SOURCE = Source(
    name="product_master",
    cadence="rarely",
    partition_format="%Y-%m-%d",
    columns=(
        "ndc",
        "product",
        "molecule",
        "manufacturer",
        "strength",
        "dosage_form",
        "package_size",
        "wac_unit_price",
        "market_basket",
        "own_brand",
        "launch_date",
    ),
    description="Product master: NDC, brand, molecule, strength, market basket (rarely updated).",
)
RELEASE = date(2026, 7, 1)  # the partition: the release this file comes from


def write(out: Landing) -> None:
    info = [PRODUCT_INFO[n.product] for n in NDCS]
    select = f"""
        select {pick([n.ndc for n in NDCS], "i")} as ndc,
               {pick([n.product for n in NDCS], "i")} as product,
               {pick([p.molecule for p in info], "i")} as molecule,
               {pick([p.manufacturer for p in info], "i")} as manufacturer,
               {pick([n.strength for n in NDCS], "i")} as strength,
               'tablet' as dosage_form,
               package_size,
               wac::decimal(10, 4) as wac_unit_price,
               '{MARKET_BASKET}' as market_basket,
               own as own_brand,
               date '1970-01-01' + launch::integer as launch_date
        from t
    """
    columns = {
        "i": np.arange(len(NDCS)),
        "package_size": np.array([n.package_size for n in NDCS]),
        "wac": np.array([n.wac_unit_price for n in NDCS]),
        "own": np.array([n.product in OWN_PRODUCTS for n in NDCS]),
        "launch": np.array([(p.launch - date(1970, 1, 1)).days for p in info]),
    }
    out.write(SOURCE, RELEASE, columns, select)
