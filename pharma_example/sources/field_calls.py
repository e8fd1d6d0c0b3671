"""``field_calls``: the field force's calls on physicians, one file a day (from the CRM).

A call is a rep's visit (in person, virtual or by phone) on a CRM account, detailing ZENVIRA or
CARDIOLEX, with samples left on in-person ZENVIRA calls. Targets - each territory's biggest
prescribers, at most 80 per rep - get two to four calls a month, never two within three days;
other accounts get an occasional call; weekends are nearly empty. The rep is the one aligned to
the account's zip3 that quarter, so a vacant territory gets no calls. ~1.5% of calls reference
a CRM account id that is in no CRM file (created on a rep's tablet and never synced): an orphan
to handle downstream.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from ..output import Landing, Source, pick
from ..prescribing import Prescribers
from ..products import OWN_PRODUCTS
from ..sales_force import SalesForce
from ..streams import stream, unique_draw
from .crm_accounts import Accounts

SOURCE = Source(
    name="field_calls",
    cadence="daily",
    partition_format="%Y-%m-%d",
    columns=("call_id", "rep_id", "crm_id", "call_date", "channel", "product_detailed", "samples"),
    description="Field force calls on CRM accounts (rep, channel, product detailed, samples).",
)

TARGET_SHARE, TARGETS_PER_REP = 0.20, 80
TARGET_CALLS = (2.0, 3.0, 4.0)  # calls a month for the lower, middle and upper third of targets
OTHER_CALLS = 0.15
WORKING_DAYS = 21.7
MIN_DAYS_BETWEEN_CALLS = 3  # a rep does not come back to the same account within three days
DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.0, 0.04, 0.01)  # Monday .. Sunday
UNKNOWN_ACCOUNTS = 0.015
CHANNELS = ("in_person", "virtual", "phone")
CHANNEL_SHARE = (0.70, 0.18, 0.12)
PRODUCT_SHARE = (0.75, 0.25)  # ZENVIRA, CARDIOLEX


def monthly_calls(acc: Accounts, who: Prescribers, force: SalesForce, day: date) -> np.ndarray:
    """Planned calls a month per account: the top prescribers of each territory are targets."""
    # indexed by physician: prescribers the CRM does not know can sit above every account's
    size = max(int(acc.physician.max(initial=0)), int(who.physician.max(initial=0))) + 1
    volume = np.zeros(size)
    known = who.physician >= 0
    volume[who.physician[known]] = who.volume[known]
    vol = volume[acc.physician]
    territory = force.at(day).territory[acc.zip3]
    order = np.lexsort((-vol, territory))
    sorted_t = territory[order]
    rank = np.empty(len(acc), np.int64)
    rank[order] = np.arange(len(acc)) - np.searchsorted(sorted_t, sorted_t, side="left")
    cut = np.quantile(vol[vol > 0], 1 - TARGET_SHARE) if (vol > 0).any() else np.inf
    target = (vol >= cut) & (vol > 0) & (rank < TARGETS_PER_REP)
    third = np.digitize(vol, np.quantile(vol[target], [1 / 3, 2 / 3])) if target.any() else 0
    return np.where(target, np.array(TARGET_CALLS)[third], np.where(vol > 0, OTHER_CALLS, 0.0))


def write(
    out: Landing,
    seed: int,
    acc: Accounts,
    who: Prescribers,
    force: SalesForce,
    days: list[date],
) -> None:
    select = f"""
        select 'CALL' || strftime(date '{{day}}', '%Y%m%d') || lpad(seq::varchar, 6, '0')
                   as call_id,
               'REP' || rep_id::varchar as rep_id,
               'CRM' || lpad(crm_id::varchar, 7, '0') as crm_id,
               date '{{day}}' as call_date,
               {pick(CHANNELS, "channel")} as channel,
               {pick(OWN_PRODUCTS, "product")} as product_detailed,
               samples
        from t
    """
    known_ids = np.sort(acc.crm_id)
    plans: dict[date, np.ndarray] = {}  # monthly calls per account, by alignment quarter
    last_call = np.full(len(acc), -MIN_DAYS_BETWEEN_CALLS)
    for d, day in enumerate(days):
        rng = stream(seed, SOURCE.name, day.toordinal())
        align = force.at(day)
        if align.quarter not in plans:
            plans[align.quarter] = monthly_calls(acc, who, force, day)
        account_rep = align.rep[align.territory[acc.zip3]]
        rate = plans[align.quarter] * (acc.inserted <= d) * (account_rep >= 0)
        rested = (d - last_call) >= MIN_DAYS_BETWEEN_CALLS
        chance = rate / WORKING_DAYS * DAY_FACTOR[day.weekday()] * rested
        called = np.flatnonzero(rng.random(len(acc)) < chance)
        if not len(called):  # somebody always works: the day's likeliest call
            called = np.array([int(np.argmax(chance))])
        last_call[called] = d
        crm_id, rep = acc.crm_id[called], account_rep[called]
        n_unknown = rng.binomial(len(called), UNKNOWN_ACCOUNTS)
        if n_unknown:
            ghosts = unique_draw(rng, n_unknown, 0, 10**7, taken=known_ids)
            staffed = np.flatnonzero(align.rep >= 0)
            crm_id = np.concatenate([crm_id, ghosts])
            rep = np.concatenate([rep, align.rep[rng.choice(staffed, n_unknown)]])
        n = len(crm_id)
        order = np.lexsort((crm_id, rep))
        channel = rng.choice(len(CHANNELS), n, p=CHANNEL_SHARE)
        product = rng.choice(len(OWN_PRODUCTS), n, p=PRODUCT_SHARE)
        samples = np.where((channel == 0) & (product == 0), np.minimum(rng.poisson(2.0, n), 12), 0)
        columns = {
            "seq": np.arange(1, n + 1),
            "rep_id": force.rep_id[rep[order]],
            "crm_id": crm_id[order],
            "channel": channel,
            "product": product,
            "samples": samples,
        }
        out.write(SOURCE, day, columns, select.replace("{day}", day.isoformat()))
