"""``rebates``: Meridian's rebate contracts with payers, the terms in force each quarter.

One row per contract term and formulary tier: the rebate rate Meridian pays on a product when
the payer lists it on that tier in that channel, with the term's effective date range. Contracts
run two years and are renewed under a new id; a payer may amend the rates mid-contract (a new
term from the first of a month), so a quarter's file can hold two terms of one contract with
adjacent date ranges. Each file lists every term that overlaps the quarter (a term spanning
quarters appears in each). An amendment is not known before it takes effect: until then the
running term shows the contract's last day as its end, and a later quarter's file restates it
ending the day before the amendment. ZENVIRA's contracts start after its launch, payer by payer.
Medicaid rates are the statutory 23.1% plus a supplemental rebate, the same on every tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from ..calendar import add_months
from ..output import Landing, Source, pick
from ..payers import CHANNELS, MEDICAID, PART_D, PAYERS
from ..products import OWN_PRODUCTS, PRODUCT_INFO, PRODUCTS
from ..streams import stream

SOURCE = Source(
    name="rebates",
    cadence="quarterly",
    partition_format="%Y-%m",
    columns=(
        "contract_id",
        "payer_id",
        "product",
        "channel",
        "tier",
        "rebate_rate",
        "effective_from",
        "effective_to",
    ),
    description="Contract rebate terms by payer, product, channel and tier, in force each quarter.",
)

TIERS = (1, 2, 3)
CHANNEL_CODES = ("COM", "PTD", "MCD")  # in contract ids: commercial, Part D, Medicaid
TIER_FACTOR = {1: 1.0, 2: 0.75, 3: 0.35}
BASE_RATE = {"ZENVIRA": 0.30, "CARDIOLEX": 0.42}  # commercial, tier 1; Part D pays 75% of it
MEDICAID_STATUTORY = 0.231
CONTRACT_MONTHS, AMENDMENT_CHANCE = 24, 0.04
FIRST_CONTRACTS = date(2020, 1, 1)  # the first contract cycle of an older brand


@dataclass(frozen=True)
class Term:
    contract_id: str
    payer: int
    product: int
    channel: int
    tier: int
    rate: float
    start: date
    end: date  # the day before the next amendment, or the contract's last day
    contract_end: date

    def end_known_on(self, day: date) -> date:
        """The end date as known on ``day``: an amendment is not known before it starts."""
        return self.end if self.end == self.contract_end or self.end < day else self.contract_end


def _rates(rng: np.random.Generator, product: str, channel: int, leverage: float) -> dict:
    if channel == MEDICAID:
        flat = round(MEDICAID_STATUTORY + rng.uniform(0.0, 0.08), 4)
        return dict.fromkeys(TIERS, flat)
    base = BASE_RATE[product] * (0.75 if channel == PART_D else 1.0) * leverage
    base *= rng.uniform(0.9, 1.1)
    return {t: round(min(0.7, base * TIER_FACTOR[t]), 4) for t in TIERS}


def terms(seed: int, until: date) -> list[Term]:
    """Every contract term of every payer, own product and channel, started before ``until``."""
    out: list[Term] = []
    for p, (payer_id, _, channels, _) in enumerate(PAYERS):
        leverage = stream(seed, SOURCE.name, p).lognormal(0.0, 0.15)
        for product in OWN_PRODUCTS:
            j = PRODUCTS.index(product)
            for channel in channels:
                rng = stream(seed, SOURCE.name, p, j, channel)
                launch = PRODUCT_INFO[product].launch
                start = max(FIRST_CONTRACTS, add_months(launch, 1 + int(rng.integers(0, 10))))
                out += _contract_terms(rng, payer_id, p, j, channel, leverage, start, until)
    return out


def _contract_terms(rng, payer_id, p, j, channel, leverage, start, until) -> list[Term]:
    out: list[Term] = []
    cycle = 0
    while start < until:
        end = add_months(start, CONTRACT_MONTHS) - timedelta(days=1)
        cycle += 1
        contract = f"RC-{payer_id}-{PRODUCTS[j][:3]}-{CHANNEL_CODES[channel]}-{cycle:02d}"
        begins = [start] + [
            add_months(start, m)
            for m in range(1, CONTRACT_MONTHS)
            if rng.random() < AMENDMENT_CHANCE
        ]
        for k, begin in enumerate(begins):
            finish = begins[k + 1] - timedelta(days=1) if k + 1 < len(begins) else end
            rates = _rates(rng, PRODUCTS[j], channel, leverage)
            out += [Term(contract, p, j, channel, t, rates[t], begin, finish, end) for t in TIERS]
        start = end + timedelta(days=1)
    return out


def write(out: Landing, seed: int, quarters: list[date]) -> None:
    every = terms(seed, add_months(quarters[-1], 3))
    select = f"""
        select contract_id,
               {pick([p[0] for p in PAYERS], "payer")} as payer_id,
               {pick(PRODUCTS, "product")} as product,
               {pick(CHANNELS, "channel")} as channel,
               tier,
               rate::decimal(6, 4) as rebate_rate,
               date '1970-01-01' + start_day::integer as effective_from,
               date '1970-01-01' + end_day::integer as effective_to
        from t
    """
    epoch = date(1970, 1, 1)
    for quarter in quarters:
        last = add_months(quarter, 3) - timedelta(days=1)
        now = sorted(
            (t for t in every if t.start <= last and t.end >= quarter),
            key=lambda t: (t.contract_id, t.tier, t.start),
        )
        columns = {
            "contract_id": np.array([t.contract_id for t in now]),
            "payer": np.array([t.payer for t in now]),
            "product": np.array([t.product for t in now]),
            "channel": np.array([t.channel for t in now]),
            "tier": np.array([t.tier for t in now]),
            "rate": np.array([t.rate for t in now]),
            "start_day": np.array([(t.start - epoch).days for t in now]),
            "end_day": np.array([(t.end_known_on(last) - epoch).days for t in now]),
        }
        out.write(SOURCE, quarter, columns, select)
