"""``claims``: pharmacy claims and co-pay, one file per week ending Saturday.

Each claim is one fill of a basket product for a patient (a hashed token) of a prescriber,
adjudicated by the patient's plan against that month's formulary: paid, or rejected with an
NCPDP reject code (not covered, PA required, step therapy, refill too soon, ...). ~3% of paid
claims are reversed 1-10 days later (the patient never picked the fill up): the reversal is a
row of its own, with status ``reversed``, the same values as the claim it cancels and
``reversal_of`` naming it, possibly in a later week's file. Paid minus reversed nets to zero.
Commercial patients on Meridian's brands often use a co-pay card: ``copay_assist`` is what the
manufacturer paid, ``copay`` what the patient paid. About 0.1 claims per TRx are captured, so
claims rows are of the order of Rx rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta

import numpy as np

from ..calendar import month_start
from ..output import Landing, Source, pick
from ..payers import COMMERCIAL, MEDICAID, PART_D, PAYERS, Listing, PlanBook
from ..prescribing import Prescribers, RxWeek
from ..products import NDC_CODES, NDC_UNITS_PER_DAY, NDCS, OWN_PRODUCTS, PRODUCTS, ndcs_of
from ..streams import stream

SOURCE = Source(
    name="claims",
    cadence="weekly",
    partition_format="%Y-%m-%d",
    columns=(
        "claim_id",
        "reversal_of",
        "transaction_date",
        "fill_date",
        "patient_token",
        "prescriber_npi",
        "payer_id",
        "plan_id",
        "ndc",
        "days_supply",
        "quantity",
        "copay",
        "copay_assist",
        "status",
        "reject_code",
    ),
    description="Pharmacy claims adjudicated in one week ending Saturday (paid/rejected/reversed).",
)

CAPTURE = 0.1  # claims captured per TRx: claims rows come out close to Rx rows
REVERSED, MAX_REVERSAL_LAG = 0.03, 10
STATUSES = ("paid", "rejected", "reversed")
PAID, REJECTED, REVERSAL = range(3)
# NCPDP reject codes: not covered, PA required, step therapy required; then the everyday ones:
# refill too soon, plan limitations exceeded, DUR reject
REJECT_CODES = ("70", "75", "608", "79", "76", "88")
SUPPLY = np.array([30, 60, 90])
SUPPLY_SHARE = {
    COMMERCIAL: (0.72, 0.05, 0.23),
    PART_D: (0.55, 0.05, 0.40),
    MEDICAID: (0.9, 0.05, 0.05),
}
# patient co-pay in dollars for 30 days by channel and tier (tier 0: paid by exception)
COPAY = np.array(
    [
        [150.0, 10.0, 35.0, 60.0, 100.0, 150.0],
        [150.0, 2.0, 10.0, 47.0, 100.0, 150.0],
        [4.0, 1.0, 3.0, 4.0, 4.0, 4.0],
    ]
)
CARD_ENROLMENT, CARD_FLOOR, CARD_CAP = 0.55, 10.0, 150.0  # co-pay card: pay down to $10
WAC = np.array([n.wac_unit_price for n in NDCS])
EPOCH = date(1970, 1, 1)


def _claim_numbers(day: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Claim numbers YYYYMMDD (the transaction day) followed by the day's 8-digit sequence."""
    days, which = np.unique(day, return_inverse=True)
    stamp = [int((EPOCH + timedelta(days=int(d))).strftime("%Y%m%d")) for d in days]
    return np.array(stamp, np.int64)[which] * 100_000_000 + seq


SELECT = f"""
select 'CLM' || claim_no::varchar as claim_id,
       case when status = {REVERSAL} then 'CLM' || orig_no::varchar end as reversal_of,
       date '1970-01-01' + tx_day::integer as transaction_date,
       date '1970-01-01' + fill_day::integer as fill_date,
       md5('{{salt}}:' || npi::varchar || ':' || patient::varchar) as patient_token,
       npi::varchar as prescriber_npi,
       {pick([p[0] for p in PAYERS], "payer")} as payer_id,
       'PL' || plan_id::varchar as plan_id,
       {pick(NDC_CODES, "ndc")} as ndc,
       days_supply,
       quantity,
       (copay_cents::decimal(14, 2) / 100)::decimal(12, 2) as copay,
       (assist_cents::decimal(14, 2) / 100)::decimal(12, 2) as copay_assist,
       {pick(STATUSES, "status")} as status,
       case when reject >= 0 then {pick(REJECT_CODES, "reject")} end as reject_code
from t
"""


@dataclass
class Batch:
    """Claims in columns (originals or reversals); dates are days since 1970-01-01."""

    tx_day: np.ndarray
    seq: np.ndarray
    orig_day: np.ndarray
    orig_seq: np.ndarray
    fill_day: np.ndarray
    npi: np.ndarray
    patient: np.ndarray
    payer: np.ndarray
    plan_id: np.ndarray
    ndc: np.ndarray
    days_supply: np.ndarray
    quantity: np.ndarray
    copay_cents: np.ndarray
    assist_cents: np.ndarray
    status: np.ndarray
    reject: np.ndarray

    def __len__(self) -> int:
        return len(self.tx_day)

    def take(self, rows) -> Batch:
        return Batch(*(getattr(self, f.name)[rows] for f in fields(self)))

    @staticmethod
    def concat(*batches: Batch) -> Batch:
        return Batch(
            *(np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(Batch))
        )


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-spread 64-bit hash of each value."""
    x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Claims:
    """Adjudicates each week's claims; reversals due in later weeks wait in ``pending``."""

    def __init__(self, seed: int, plans: PlanBook, listings: dict[date, Listing]) -> None:
        self.seed, self.plans, self.listings = seed, plans, listings
        self.lives = np.cumsum(plans.lives / plans.lives.sum())
        self.pending: Batch | None = None

    def _plan_of(self, npi: np.ndarray, patient: np.ndarray) -> np.ndarray:
        """The patient's plan: fixed per patient (a hash), weighted by covered lives."""
        key = _mix(npi.astype(np.uint64) * np.uint64(1_000_003) + patient.astype(np.uint64))
        u = (_mix(key ^ np.uint64(self.seed & 0xFFFFFFFF)) >> np.uint64(11)) / float(1 << 53)
        return np.minimum(np.searchsorted(self.lives, u, side="right"), len(self.lives) - 1)

    def _adjudicate(self, rng, rx: RxWeek, who: Prescribers) -> Batch:
        count = rng.binomial(rx.trx, CAPTURE)
        row = np.repeat(np.arange(len(rx.trx)), count)
        m = len(row)
        presc, product = rx.prescriber[row], rx.product[row]
        npi = who.npi[presc]
        patient = (rng.random(m) * who.panel[presc]).astype(np.int64)
        plan = self._plan_of(npi, patient)
        channel = self.plans.channel[plan]
        start = (rx.week_ending - EPOCH).days - 6
        fill_day = start + rng.integers(0, 7, m)
        ndc = np.empty(m, np.int64)
        for j in range(len(PRODUCTS)):
            where = np.flatnonzero(product == j)
            idx, share = ndcs_of(j)
            ndc[where] = rng.choice(idx, len(where), p=share)
        supply = np.empty(m, np.int64)
        for c, share in SUPPLY_SHARE.items():
            where = np.flatnonzero(channel == c)
            supply[where] = rng.choice(SUPPLY, len(where), p=share)
        tier = np.empty(m, np.int64)
        pa, step = np.empty(m, bool), np.empty(m, bool)
        month_of = np.array(
            [month_start(EPOCH + timedelta(days=int(d))) for d in range(start, start + 7)]
        )
        for month in sorted(set(month_of)):
            days = np.flatnonzero(month_of == month) + start
            where = np.flatnonzero(np.isin(fill_day, days))
            listing = self.listings[month]
            tier[where] = listing.tier[plan[where], product[where]]
            pa[where] = listing.prior_auth[plan[where], product[where]]
            step[where] = listing.step_edit[plan[where], product[where]]
        blocked = [tier == 0, pa, step]
        reject_chance = np.select(blocked, [0.80, 0.35, 0.25], 0.03)
        rejected = rng.random(m) < reject_chance
        everyday = rng.choice(np.array([3, 4, 5]), m, p=[0.5, 0.3, 0.2])
        reject = np.where(rejected, np.select(blocked, [0, 1, 2], everyday), -1)
        months = np.where(supply == 90, 2.5, supply / 30)
        gross = COPAY[channel, tier] * months
        deductible = (channel == COMMERCIAL) & (rng.random(m) < 0.08)
        quantity = supply * NDC_UNITS_PER_DAY[ndc]
        gross = np.where(deductible, np.minimum(WAC[ndc] * quantity, 500.0), gross)
        own = np.isin(product, [PRODUCTS.index(p) for p in OWN_PRODUCTS])
        card = own & (channel == COMMERCIAL) & (rng.random(m) < CARD_ENROLMENT)
        gross_cents = np.round(gross * 100).astype(np.int64)
        assist = np.where(
            card, np.clip(gross_cents - CARD_FLOOR * 100, 0, CARD_CAP * 100 * months), 0
        )
        assist = np.where(rejected, 0, assist).astype(np.int64)
        copay = np.where(rejected, 0, gross_cents - assist)
        order = np.argsort(fill_day, kind="stable")
        fill_sorted = fill_day[order]
        seq = np.empty(m, np.int64)
        seq[order] = np.arange(m) - np.searchsorted(fill_sorted, fill_sorted, side="left")
        zeros = np.zeros(m, np.int64)
        return Batch(
            tx_day=fill_day,
            seq=seq,
            orig_day=zeros,
            orig_seq=zeros,
            fill_day=fill_day,
            npi=npi,
            patient=patient,
            payer=self.plans.payer[plan],
            plan_id=self.plans.plan_id[plan],
            ndc=ndc,
            days_supply=supply,
            quantity=quantity,
            copay_cents=copay,
            assist_cents=assist,
            status=np.where(rejected, REJECTED, PAID),
            reject=reject,
        ).take(order)

    def _reversals(self, rng, claims: Batch) -> Batch:
        paid = np.flatnonzero((claims.status == PAID) & (rng.random(len(claims)) < REVERSED))
        rev = claims.take(paid)
        rev.orig_day, rev.orig_seq = rev.tx_day.copy(), rev.seq.copy()
        rev.tx_day = rev.fill_day + rng.integers(1, MAX_REVERSAL_LAG + 1, len(rev))
        rev.status = np.full(len(rev), REVERSAL)
        return rev

    def write_week(self, out: Landing, rx: RxWeek, who: Prescribers) -> None:
        rng = stream(self.seed, SOURCE.name, rx.week_ending.toordinal())
        claims = self._adjudicate(rng, rx, who)
        reversals = self._reversals(rng, claims)
        if self.pending is not None:
            reversals = Batch.concat(self.pending, reversals)
        last = (rx.week_ending - EPOCH).days
        self.pending = reversals.take(reversals.tx_day > last)
        due = reversals.take(reversals.tx_day <= last)
        # a reversal's id follows the day's original claims, in the order of what it cancels
        order = np.lexsort((due.orig_seq, due.orig_day, due.tx_day))
        due = due.take(order)
        first_of_day = np.searchsorted(due.tx_day, due.tx_day, side="left")
        originals_that_day = np.searchsorted(
            claims.tx_day, due.tx_day, side="right"
        ) - np.searchsorted(claims.tx_day, due.tx_day, side="left")
        due.seq = originals_that_day + np.arange(len(due)) - first_of_day
        rows = Batch.concat(claims, due)
        rows = rows.take(np.lexsort((rows.seq, rows.tx_day)))
        columns = {f.name: getattr(rows, f.name) for f in fields(Batch)}
        columns["claim_no"] = _claim_numbers(rows.tx_day, rows.seq)
        columns["orig_no"] = _claim_numbers(rows.orig_day, rows.orig_seq)
        out.write(SOURCE, rx.week_ending, columns, SELECT.replace("{salt}", str(int(self.seed))))
