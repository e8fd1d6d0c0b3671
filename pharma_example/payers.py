"""Payers, their plans and the plans' formularies: the market access the other sources see.

A plan belongs to one payer and one channel (commercial, Medicare Part D, Medicaid) and covers
some lives. Each month each plan lists each basket product on its formulary: a tier (1 best
... 5 worst, or not covered), prior authorisation (PA), a step edit and a quantity limit. The
listing drifts month to month (a slowly changing dimension); ZENVIRA, launched in January 2026,
starts blocked on most plans and gains access. Claims are adjudicated against the listing in
force on the fill date, so formulary, claims and rebates agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from .calendar import months_between
from .products import PRODUCT_INFO, PRODUCTS
from .streams import stream, unique_draw

CHANNELS = ("commercial", "medicare_part_d", "medicaid")
COMMERCIAL, PART_D, MEDICAID = range(3)
CHANNEL_LIVES = (0.55, 0.25, 0.20)  # share of covered lives per channel
LIVES_PER_PHYSICIAN = 330  # ~330M covered lives for ~1M US physicians
PLAN_TYPES = (
    ("PPO", "HMO", "HDHP", "EPO", "POS"),
    ("PDP Basic", "PDP Enhanced", "MAPD"),
    ("Managed Medicaid", "CHIP"),
)
# (payer id, name, channels served, relative size)
PAYERS = (
    ("PY01", "Northstar Health", (COMMERCIAL, PART_D), 5.0),
    ("PY02", "Bluecrest Mutual", (COMMERCIAL, PART_D), 4.0),
    ("PY03", "Keystone Rx Solutions", (COMMERCIAL, PART_D, MEDICAID), 6.0),
    ("PY04", "Pinnacle Care", (COMMERCIAL,), 2.0),
    ("PY05", "Harborview Health Plans", (COMMERCIAL, MEDICAID), 2.5),
    ("PY06", "Summit Benefit Managers", (COMMERCIAL, PART_D), 3.0),
    ("PY07", "Evergreen Senior Health", (PART_D,), 2.0),
    ("PY08", "Lakeshore Community Health", (MEDICAID,), 1.5),
    ("PY09", "Prairie Mutual", (COMMERCIAL,), 1.0),
    ("PY10", "Coastal Health Alliance", (COMMERCIAL, MEDICAID), 1.5),
    ("PY11", "Frontier Medicare Advantage", (PART_D,), 1.5),
    ("PY12", "Granite Community Care", (MEDICAID,), 1.0),
)
FORMULARY_EPOCH = date(2025, 1, 1)  # listings evolve month by month from here
# per product: monthly chance of a change, and weights of (better, worse, step edit, QL)
DRIFT = {
    "ZENVIRA": (0.10, (0.60, 0.15, 0.15, 0.10)),
    "CARDIOLEX": (0.04, (0.25, 0.35, 0.25, 0.15)),
    "HARTEX": (0.03, (0.30, 0.30, 0.20, 0.20)),
    "VASOPRIN": (0.04, (0.35, 0.30, 0.20, 0.15)),
}
# per product: the first listing, (tiers 0..5 weights, PA share, step share); 0 = not covered
FIRST_LISTING = {
    "ZENVIRA": ((0.50, 0, 0, 0.40, 0.10, 0), 0.80, 0.10),  # at launch: a new-to-market block
    "CARDIOLEX": ((0, 0, 0.60, 0.30, 0.10, 0), 0.10, 0.15),
    "HARTEX": ((0, 0.85, 0.15, 0, 0, 0), 0.0, 0.0),
    "VASOPRIN": ((0.15, 0, 0.45, 0.40, 0, 0), 0.25, 0.30),
}


def plans_for(scale: float) -> int:
    """Plans in the market: the count grows with the square root of the scale."""
    return int(np.clip(round(30 * scale**0.5), 12, 800))


@dataclass(frozen=True)
class PlanBook:
    """The plans in columns; row ``i`` is one plan."""

    plan_id: np.ndarray  # int: PL#####
    payer: np.ndarray  # index into PAYERS
    channel: np.ndarray  # index into CHANNELS
    plan_type: np.ndarray  # index into PLAN_TYPES[channel]
    lives: np.ndarray  # covered lives, before the monthly drift
    seed: int

    def __len__(self) -> int:
        return len(self.plan_id)

    def names(self) -> list[str]:
        return [
            f"{PAYERS[p][1]} {PLAN_TYPES[c][t]} {i % 100:02d}"
            for i, p, c, t in zip(
                self.plan_id, self.payer, self.channel, self.plan_type, strict=True
            )
        ]

    def lives_in(self, month: date) -> np.ndarray:
        """Covered lives in ``month``: enrolment drifts by a percent or so each month."""
        rng = stream(self.seed, "plan_lives", month.toordinal())
        return np.round(self.lives * rng.uniform(0.985, 1.015, len(self))).astype(np.int64)


def plan_book(seed: int, scale: float, n_physicians: int) -> PlanBook:
    rng = stream(seed, "plans")
    n = plans_for(scale)
    channel = np.concatenate([np.arange(3), rng.choice(3, n - 3, p=CHANNEL_LIVES)])
    payer = np.empty(n, np.int64)
    for c in range(3):
        serving = [i for i, p in enumerate(PAYERS) if c in p[2]]
        size = np.array([PAYERS[i][3] for i in serving])
        who = np.flatnonzero(channel == c)
        payer[who] = np.array(serving)[rng.choice(len(serving), len(who), p=size / size.sum())]
    plan_type = np.array([rng.integers(0, len(PLAN_TYPES[c])) for c in channel])
    weight = rng.lognormal(0.0, 0.9, n)
    lives = np.zeros(n)
    for c in range(3):
        who = channel == c
        lives[who] = weight[who] / weight[who].sum() * CHANNEL_LIVES[c]
    lives *= LIVES_PER_PHYSICIAN * n_physicians
    return PlanBook(
        plan_id=unique_draw(rng, n, 10_000, 100_000),
        payer=payer,
        channel=channel,
        plan_type=plan_type,
        lives=np.maximum(np.round(lives), 250).astype(np.int64),
        seed=seed,
    )


@dataclass
class Listing:
    """Every plan's listing of every product in one month (arrays of shape plans x products)."""

    tier: np.ndarray  # 0 = not covered, 1..5
    prior_auth: np.ndarray
    step_edit: np.ndarray
    quantity_limit: np.ndarray

    def copy(self) -> Listing:
        return Listing(*(a.copy() for a in vars(self).values()))


def _first_listing(rng: np.random.Generator, n: int, product: str) -> tuple[np.ndarray, ...]:
    tiers, pa, step = FIRST_LISTING[product]
    tier = rng.choice(6, n, p=np.array(tiers) / sum(tiers))
    covered = tier > 0
    return (
        tier,
        covered & (rng.random(n) < pa),
        covered & (rng.random(n) < step),
        covered & (rng.random(n) < 0.1),
    )


def _drift(rng: np.random.Generator, listing: Listing, j: int) -> None:
    """One month of formulary decisions for product ``j`` on every plan."""
    chance, weights = DRIFT[PRODUCTS[j]]
    n = listing.tier.shape[0]
    changing = rng.random(n) < chance
    kind = rng.choice(4, n, p=weights)
    tier, pa = listing.tier[:, j], listing.prior_auth[:, j]
    step, ql = listing.step_edit[:, j], listing.quantity_limit[:, j]
    covered = tier > 0
    better, worse = changing & (kind == 0), changing & (kind == 1)
    gain = better & ~covered  # a blocked product gets listed, with PA
    tier[gain], pa[gain] = 3, True
    lift_pa = better & covered & pa
    pa[lift_pa] = False
    lift_step = better & covered & ~pa & step & ~lift_pa
    step[lift_step] = False
    up = better & covered & ~lift_pa & ~lift_step & (tier > 1)
    tier[up] -= 1
    add_pa = worse & covered & ~pa & (rng.random(n) < 0.5)
    pa[add_pa] = True
    down = worse & covered & ~add_pa
    tier[down] = np.where(tier[down] < 5, tier[down] + 1, 0)
    dropped = down & (tier == 0)
    pa[dropped] = step[dropped] = ql[dropped] = False
    step[changing & (kind == 2) & (tier > 0)] ^= True
    ql[changing & (kind == 3) & (tier > 0)] ^= True


def formulary(seed: int, plans: PlanBook, first: date, last: date) -> dict[date, Listing]:
    """Each month's listing, from ``first``'s month to ``last``'s month; the listings evolve
    from :data:`FORMULARY_EPOCH` (or earlier, if asked for), one random stream per month."""
    n, k = len(plans), len(PRODUCTS)
    start = min(FORMULARY_EPOCH, first.replace(day=1))
    listing = Listing(
        np.zeros((n, k), np.int64),
        np.zeros((n, k), bool),
        np.zeros((n, k), bool),
        np.zeros((n, k), bool),
    )
    launched = np.zeros(k, bool)
    out: dict[date, Listing] = {}
    for month in months_between(start, last):
        rng = stream(seed, "formulary", month.toordinal())
        for j, product in enumerate(PRODUCTS):
            if not launched[j] and month >= PRODUCT_INFO[product].launch.replace(day=1):
                launched[j] = True
                (
                    listing.tier[:, j],
                    listing.prior_auth[:, j],
                    listing.step_edit[:, j],
                    listing.quantity_limit[:, j],
                ) = _first_listing(rng, n, product)
            elif launched[j]:
                _drift(rng, listing, j)
        if month >= first.replace(day=1):
            out[month] = listing.copy()
    return out
