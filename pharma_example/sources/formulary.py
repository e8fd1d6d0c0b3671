"""``formulary``: every plan's listing of every basket product, a full file each month.

Payer, plan, channel (commercial, Medicare Part D, Medicaid), covered lives, and per product
the coverage, tier, prior authorisation, step edit and quantity limit in force that month. The
listings drift month to month (tiers move, PA and step edits come and go), so consecutive
files differ in a few rows: a slowly changing dimension to be historised downstream.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from ..output import Landing, Source, pick
from ..payers import CHANNELS, PAYERS, Listing, PlanBook
from ..products import PRODUCTS

SOURCE = Source(
    name="formulary",
    cadence="monthly",
    partition_format="%Y-%m",
    columns=(
        "payer_id",
        "payer_name",
        "plan_id",
        "plan_name",
        "channel",
        "covered_lives",
        "product",
        "coverage",
        "tier",
        "prior_auth",
        "step_therapy",
        "quantity_limit",
        "effective_date",
    ),
    description="Payer/plan formulary: each plan's listing of each basket product, monthly.",
)


def _select(month: date, plan_names: list[str]) -> str:
    return f"""
        select {pick([p[0] for p in PAYERS], "payer")} as payer_id,
               {pick([p[1] for p in PAYERS], "payer")} as payer_name,
               'PL' || plan_id::varchar as plan_id,
               {pick(plan_names, "plan")} as plan_name,
               {pick(CHANNELS, "channel")} as channel,
               lives as covered_lives,
               {pick(PRODUCTS, "product")} as product,
               case when tier > 0 then 'covered' else 'not_covered' end as coverage,
               case when tier > 0 then tier end as tier,
               prior_auth, step_therapy, quantity_limit,
               date '{month.isoformat()}' as effective_date
        from t
    """


def write(out: Landing, plans: PlanBook, listings: dict[date, Listing], months: list[date]) -> None:
    names = plans.names()
    n, k = len(plans), len(PRODUCTS)
    plan = np.repeat(np.arange(n), k)
    order = np.argsort(plans.plan_id[plan], kind="stable")  # by plan id, then product
    for month in months:
        listing = listings[month]
        columns = {
            "plan": plan,
            "payer": plans.payer[plan],
            "plan_id": plans.plan_id[plan],
            "channel": plans.channel[plan],
            "lives": plans.lives_in(month)[plan],
            "product": np.tile(np.arange(k), n),
            "tier": listing.tier.ravel(),
            "prior_auth": listing.prior_auth.ravel(),
            "step_therapy": listing.step_edit.ravel(),
            "quantity_limit": listing.quantity_limit.ravel(),
        }
        out.write(SOURCE, month, {c: v[order] for c, v in columns.items()}, _select(month, names))
