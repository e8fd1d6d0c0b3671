"""kpi_weekly: the brand team's weekly scorecard, one row per week (ending Saturday) and product.

Prescriptions and share of basket from physician_dw, claims and net sales from payer_dw, NPP
sends and clicks from npp, side by side. The port is partitioned by week: a build publishes the
weeks of its scope only, reading just those weeks' rows of each input (NPP days are folded into
the week they belong to).

The business rules are pure polars functions (tested on small frames); DuckDB only sums each
pinned input port to one row per period and product, within the build's window.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from mesh_domains.platform import BuildContext, port_builder

if TYPE_CHECKING:  # polars loads when a build runs, not when the code location loads
    import polars as pl

KEY = ["week_ending", "product"]
SATURDAY = 6  # polars' dt.weekday(): Monday = 1 .. Sunday = 7
COUNTS = ("nrx", "trx", "paid_claims", "reversed_claims", "npp_sends", "npp_clicks")


def week_ending(day: pl.Expr) -> pl.Expr:
    """The Saturday that ends the week of ``day`` (a Saturday is its own week's end)."""
    import polars as pl

    return day + pl.duration(days=(SATURDAY - day.dt.weekday()) % 7)


def npp_weekly(daily: pl.DataFrame) -> pl.DataFrame:
    """NPP sends and clicks per week and product, from per-day sums (activity_date, product,
    sends, clicks)."""
    import polars as pl

    return (
        daily.with_columns(week_ending(pl.col("activity_date")).alias("week_ending"))
        .group_by(KEY)
        .agg(pl.col("sends").sum().alias("npp_sends"), pl.col("clicks").sum().alias("npp_clicks"))
    )


def weekly_kpis(
    rx: pl.DataFrame, claims: pl.DataFrame, net: pl.DataFrame, npp: pl.DataFrame
) -> pl.DataFrame:
    """One row per week and product seen in any input, zero where an input has nothing.

    rx: week_ending, product, nrx, trx. claims: week_ending, product, paid_claims,
    reversed_claims. net: week_ending, product, net_sales. npp: week_ending, product,
    npp_sends, npp_clicks. share_of_basket is the product's TRx over the basket's TRx that
    week (null in a week without any basket TRx).
    """
    import polars as pl

    frame = rx
    for other in (claims, net, npp):
        frame = frame.join(other, on=KEY, how="full", coalesce=True)
    basket = pl.col("trx").sum().over("week_ending")
    return (
        frame.with_columns(
            *(pl.col(c).fill_null(0).cast(pl.Int64) for c in COUNTS),
            pl.col("net_sales").fill_null(0.0).cast(pl.Float64).round(2),
        )
        .with_columns(
            pl.when(basket > 0)
            .then(pl.col("trx") / basket)
            .otherwise(None)
            .cast(pl.Float64)
            .alias("share_of_basket")
        )
        .select(
            pl.col("week_ending").cast(pl.Date),
            "product",
            "nrx",
            "trx",
            "share_of_basket",
            "paid_claims",
            "reversed_claims",
            "net_sales",
            "npp_sends",
            "npp_clicks",
        )
        .sort(KEY)
    )


@port_builder("kpi_weekly")
def build_kpi_weekly(build: BuildContext) -> dict:
    """Weekly KPIs per product for the weeks of the build's scope (every week without one)."""
    first, last = (
        (build.scope.first_day, build.scope.last_day) if build.scope else (date.min, date.max)
    )
    con = build.con

    def frame(sql: str) -> pl.DataFrame:
        return con.execute(sql, [first, last]).pl()

    rx = frame(f"""
        select week_ending, product, sum(nrx)::bigint as nrx, sum(trx)::bigint as trx
        from {build.port("physician_dw/fact_rx_weekly")}
        where week_ending between ? and ?
        group by all
    """)
    claims = frame(f"""
        select week_ending, product,
               count(*) filter (where status = 'paid')::bigint as paid_claims,
               count(*) filter (where status = 'reversed')::bigint as reversed_claims
        from {build.port("payer_dw/fact_claims")}
        where week_ending between ? and ?
        group by all
    """)
    net = frame(f"""
        select week_ending, product, sum(net_sales)::double as net_sales
        from {build.port("payer_dw/gross_to_net")}
        where week_ending between ? and ?
        group by all
    """)
    npp = frame(f"""
        select activity_date, product, sum(sends)::bigint as sends, sum(clicks)::bigint as clicks
        from {build.port("npp/engagement_daily")}
        where activity_date between ? and ?
        group by all
    """)
    kpis = weekly_kpis(rx, claims, net, npp_weekly(npp))
    con.register("kpi_frame", kpis)
    build.stage("kpi_weekly", "select * from kpi_frame")
    con.unregister("kpi_frame")
    return {"kpi_weekly": {"weeks": kpis["week_ending"].n_unique(), "window": f"{first}..{last}"}}
