"""The market basket: four hypertension brands, their NDCs, prices and launch dates.

Meridian Pharma, the company whose data this is, markets ZENVIRA (launched in January 2026:
the Launch phase) and CARDIOLEX (its Mature brand); HARTEX and VASOPRIN are competitors. Every
source that names a product or an NDC takes it from here, so the product master, Rx, claims,
formulary, rebates and field calls agree on the basket.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import numpy as np

BRAND = "ZENVIRA"
PRODUCTS = (BRAND, "CARDIOLEX", "HARTEX", "VASOPRIN")
OWN_PRODUCTS = ("ZENVIRA", "CARDIOLEX")  # detailed by the field force, rebated to payers
MANUFACTURER = "Meridian Pharma"
MARKET_BASKET = "Hypertension (ARB/ACE)"


class Product(NamedTuple):
    name: str
    molecule: str
    manufacturer: str
    launch: date


PRODUCT_INFO = {
    p.name: p
    for p in (
        Product("ZENVIRA", "zenvisartan", MANUFACTURER, date(2026, 1, 12)),
        Product("CARDIOLEX", "cardolapril", MANUFACTURER, date(2014, 3, 3)),
        Product("HARTEX", "hartesartan", "Halvard Therapeutics", date(2009, 9, 14)),
        Product("VASOPRIN", "vasoprilat", "Novagen Biosciences", date(2019, 6, 24)),
    )
}


class Ndc(NamedTuple):
    """One package: an 11-digit NDC (5-4-2), its strength, size and wholesale price."""

    ndc: str
    product: str
    strength: str
    package_size: int  # tablets per package
    units_per_day: int
    wac_unit_price: float  # wholesale acquisition cost per tablet, USD
    share: float  # share of the product's fills


NDCS = (
    Ndc("72931-0140-30", "ZENVIRA", "40 mg", 30, 1, 9.85, 0.30),
    Ndc("72931-0180-30", "ZENVIRA", "80 mg", 30, 1, 9.85, 0.45),
    Ndc("72931-0180-90", "ZENVIRA", "80 mg", 90, 1, 9.60, 0.15),
    Ndc("72931-0316-30", "ZENVIRA", "160 mg", 30, 1, 11.20, 0.10),
    Ndc("72931-0510-90", "CARDIOLEX", "10 mg", 90, 1, 3.15, 0.35),
    Ndc("72931-0520-90", "CARDIOLEX", "20 mg", 90, 1, 3.15, 0.45),
    Ndc("72931-0540-30", "CARDIOLEX", "40 mg", 30, 1, 3.40, 0.20),
    Ndc("68912-0025-30", "HARTEX", "25 mg", 30, 1, 0.42, 0.25),
    Ndc("68912-0050-90", "HARTEX", "50 mg", 90, 1, 0.38, 0.50),
    Ndc("68912-0100-90", "HARTEX", "100 mg", 90, 2, 0.45, 0.25),
    Ndc("70344-0200-30", "VASOPRIN", "20 mg", 30, 1, 6.70, 0.55),
    Ndc("70344-0400-30", "VASOPRIN", "40 mg", 30, 1, 7.10, 0.45),
)
NDC_CODES = tuple(n.ndc for n in NDCS)
NDC_UNITS_PER_DAY = np.array([n.units_per_day for n in NDCS], np.int64)
NDC_PACKAGE = np.array([n.package_size for n in NDCS], np.int64)


def ndcs_of(product: int) -> tuple[np.ndarray, np.ndarray]:
    """The NDC indices of product ``product`` (index into PRODUCTS) and their fill shares."""
    idx = np.array([i for i, n in enumerate(NDCS) if n.product == PRODUCTS[product]])
    share = np.array([NDCS[i].share for i in idx])
    return idx, share / share.sum()
