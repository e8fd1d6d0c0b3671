"""Prescribing habits: who writes which basket products, and how much, week by week.

A prescriber's weekly volume is drawn once (a bounded heavy tail: most write a few scripts a
week per product, a few write dozens) and depends on the specialty, never on the scale: a
bigger scale means more prescribers, not bigger ones. Rx rows and claims are both drawn from
these habits, so the two sources overlap the way syndicated Rx and claims data do, without
matching 1:1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from .people import ACTIVE, SPECIALTY_AFFINITY, Roster, RosterBook
from .products import BRAND, PRODUCT_INFO, PRODUCTS
from .streams import stream

UNKNOWN_SHARE = 0.03  # valid NPIs the AMA file does not know (NPs, PAs, new licences)
PARETO_ALPHA, VOLUME_MIN, VOLUME_MAX = 1.6, 1.0, 30.0  # mean weekly NRx per product
MAX_NRX, MAX_TRX = 250, 600  # a hard cap per prescriber, product and week
BRAND_RAMP_WEEKS = 52  # ZENVIRA's share builds up over its first year


@dataclass(frozen=True)
class Prescribers:
    """Prescribers sorted by NPI; ``physician`` is the roster row, or -1 if not in the AMA file."""

    npi: np.ndarray
    physician: np.ndarray
    volume: np.ndarray  # mean weekly NRx per product written
    writes: np.ndarray  # (prescribers x products) bool: products in the prescriber's habits
    refills: np.ndarray  # (prescribers x products): refills per new script
    weekly_chance: np.ndarray  # chance of writing in a given week
    panel: np.ndarray  # patients on the basket: claims draw patients from it

    def __len__(self) -> int:
        return len(self.npi)


def _bounded_pareto(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pareto(alpha) truncated to [VOLUME_MIN, VOLUME_MAX] by inversion: a heavy tail with a
    ceiling, so the biggest writer does not grow with the number of prescribers."""
    lo, hi = VOLUME_MIN**-PARETO_ALPHA, VOLUME_MAX**-PARETO_ALPHA
    return (lo - rng.random(n) * (lo - hi)) ** (-1 / PARETO_ALPHA)


def prescribers(seed: int, roster: Roster, book: RosterBook) -> Prescribers:
    """Active physicians of the latest AMA month plus ~3% prescribers unknown to the AMA."""
    rng = stream(seed, "prescribers")
    active = np.flatnonzero(roster.status == ACTIVE)
    unknown = book.unknown_npis(max(1, round(len(active) * UNKNOWN_SHARE / (1 - UNKNOWN_SHARE))))
    npi = np.concatenate([roster.npi[active], unknown])
    physician = np.concatenate([active, np.full(len(unknown), -1)])
    affinity = np.concatenate(
        [
            SPECIALTY_AFFINITY[roster.specialty[active]],
            rng.choice(np.array([0.5, 1.0, 2.0]), len(unknown)),
        ]
    )
    n, k = len(npi), len(PRODUCTS)
    volume = np.minimum(affinity * _bounded_pareto(rng, n), VOLUME_MAX)
    count = rng.choice(np.arange(1, k + 1), n, p=[0.30, 0.30, 0.22, 0.18])
    rank = rng.random((n, k)).argsort(axis=1).argsort(axis=1)
    order = np.argsort(npi, kind="stable")
    return Prescribers(
        npi=npi[order],
        physician=physician[order],
        volume=volume[order],
        writes=(rank < count[:, None])[order],
        refills=rng.uniform(1.0, 3.0, (n, k))[order],
        weekly_chance=np.minimum(0.95, 0.5 + 0.05 * volume)[order],
        panel=np.ceil(volume * 12 + 4).astype(np.int64)[order],
    )


@dataclass(frozen=True)
class RxWeek:
    """One week's rows, ordered by (prescriber NPI, product)."""

    week_ending: date
    prescriber: np.ndarray  # index into Prescribers
    product: np.ndarray  # index into PRODUCTS
    nrx: np.ndarray
    trx: np.ndarray
    projected: np.ndarray  # bool: projected by the data vendor rather than observed


def brand_uptake(week_ending: date) -> float:
    """ZENVIRA's volume multiplier: 0 before launch, ramping to 1.2 over its first year."""
    weeks = (week_ending - PRODUCT_INFO[BRAND].launch).days / 7
    return 0.0 if weeks < 0 else 0.3 + 0.9 * min(1.0, weeks / BRAND_RAMP_WEEKS)


def rx_week(seed: int, who: Prescribers, week_ending: date) -> RxWeek:
    """Rx rows of one week: a stream per week, so weeks are independent of each other."""
    rng = stream(seed, "rx_weekly", week_ending.toordinal())
    n, k = who.writes.shape
    on_market = np.array(
        [PRODUCT_INFO[p].launch <= week_ending - timedelta(days=6) for p in PRODUCTS]
    )
    writing = who.writes & on_market & (rng.random(n) < who.weekly_chance)[:, None]
    rows, product = np.nonzero(writing)  # row-major: sorted by prescriber, then product
    trend = np.where(product == PRODUCTS.index(BRAND), brand_uptake(week_ending), 1.0)
    mean = who.volume[rows] * trend * rng.gamma(8.0, 1 / 8.0, len(rows))
    nrx = np.minimum(rng.poisson(mean), MAX_NRX)
    refills = rng.poisson(mean * who.refills[rows, product])
    trx = np.clip(nrx + refills, 1, MAX_TRX)
    return RxWeek(
        week_ending=week_ending,
        prescriber=rows,
        product=product,
        nrx=np.minimum(nrx, trx),
        trx=trx,
        projected=rng.random(len(rows)) < 0.3,
    )
