"""Physician segments and the targeting list: who to call on for the brand, and why.

A physician's potential is the market-basket TRx they write, adjusted by how well the plans
their patients' claims go through cover the brand (``access_rate``): volume that payers block
is not volume the field force can win. Deciles rank that adjusted potential (10 = the top
tenth); segments cross potential with the physician's brand share against the brand's share of
the whole basket. The targeting list is the top three deciles, ranked.

The business rules are pure polars functions (tested on small frames); DuckDB only aggregates
the pinned input ports to one row per physician (and plan) before they run. A new week of Rx
changes shares, not claims: while the claims, plans and physicians are the versions the served
segments were built from, their access rates are reused instead of aggregated again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh_domains.platform import BuildContext, port_builder
from mesh_domains.platform.errors import MeshError

if TYPE_CHECKING:  # polars loads when a build runs, not when the code location loads
    import polars as pl

NO_CLAIMS_ACCESS_RATE = 0.5  # no paid claims through a plan scored for the brand: neutral
HIGH_POTENTIAL_DECILE = 6  # deciles 6-10: the upper half of adjusted potential
TARGET_DECILES = (8, 9, 10)
SEGMENTS = ("grow", "defend", "maintain", "monitor")


def access_rates(claims: pl.DataFrame, plan_access: pl.DataFrame, brand: str) -> pl.DataFrame:
    """Each physician's access to ``brand``: the mean ``access_score`` of the plans their paid
    claims went through, weighted by the number of claims per plan.

    ``claims``: physician_id, plan_id, claims (paid claims not reversed since).
    ``plan_access``: plan_id, product, access_score. Claims through a plan that has no score
    for the brand do not count; physicians left without any scored claim get no row here (and
    :data:`NO_CLAIMS_ACCESS_RATE` in :func:`segment_physicians`).
    """
    import polars as pl

    scores = plan_access.filter(pl.col("product") == brand).select("plan_id", "access_score")
    return (
        claims.filter(pl.col("claims") > 0)
        .join(scores, on="plan_id", how="inner")
        .group_by("physician_id")
        .agg(
            ((pl.col("access_score") * pl.col("claims")).sum() / pl.col("claims").sum()).alias(
                "access_rate"
            )
        )
        .with_columns(pl.col("access_rate").round(6))
        .sort("physician_id")
    )


def ntile_deciles(frame: pl.DataFrame, by: str, tiebreak: str) -> pl.Series:
    """SQL's ``ntile(10) over (order by by, tiebreak)`` for the rows of ``frame``, in the
    frame's own row order: ten groups as equal as possible, the larger ones first (fewer than
    ten rows give deciles 1..n)."""
    import polars as pl

    n = frame.height
    size, extra = divmod(n, 10)
    big = extra * (size + 1)  # rows in the groups that hold one row more
    # each row's position in the order (the inverse of the sorting permutation), sorted once
    positions = frame.select(
        pl.arg_sort_by([by, tiebreak]).arg_sort().cast(pl.Int64).alias("position")
    )
    position = pl.col("position")
    decile = (
        pl.when(position < big)
        .then(position // (size + 1) + 1)
        .otherwise(extra + (position - big) // max(size, 1) + 1)
    )
    return positions.select(decile.cast(pl.Int64).alias("decile"))["decile"]


def segment(decile: pl.Expr, brand_share: pl.Expr, basket_share: float) -> pl.Expr:
    """grow: high potential, share below the brand's basket share; defend: high potential,
    share at or above it; maintain: lower potential, share at or above it; monitor: the rest."""
    import polars as pl

    high = decile >= HIGH_POTENTIAL_DECILE
    ahead = brand_share >= basket_share
    return (
        pl.when(high & ~ahead)
        .then(pl.lit("grow"))
        .when(high & ahead)
        .then(pl.lit("defend"))
        .when(ahead)
        .then(pl.lit("maintain"))
        .otherwise(pl.lit("monitor"))
    )


def brand_basket_share(share: pl.DataFrame) -> float:
    """The brand's share of the whole basket's TRx across the physicians (0 without TRx)."""
    basket = share["basket_trx"].sum()
    return float(share["brand_trx"].sum() / basket) if basket else 0.0


def segment_physicians(share: pl.DataFrame, access: pl.DataFrame) -> pl.DataFrame:
    """One row per physician of ``share`` (physician_id, npi, basket_trx, brand_trx,
    brand_share) with access rate, adjusted potential, decile and segment.

    adjusted_potential = basket_trx × access_rate; deciles are NTILE(10) by it (ties broken
    by physician_id, so a build is deterministic).
    """
    import polars as pl

    framed = (
        share.join(access.select("physician_id", "access_rate"), on="physician_id", how="left")
        .with_columns(pl.col("access_rate").fill_null(NO_CLAIMS_ACCESS_RATE).cast(pl.Float64))
        .with_columns(
            (pl.col("basket_trx").cast(pl.Float64) * pl.col("access_rate")).alias(
                "adjusted_potential"
            )
        )
    )
    framed = framed.with_columns(
        ntile_deciles(framed, "adjusted_potential", "physician_id").alias("decile")
    )
    basket_share = brand_basket_share(share)
    return framed.select(
        pl.col("physician_id"),
        pl.col("npi"),
        pl.col("basket_trx").cast(pl.Int64),
        pl.col("brand_share").cast(pl.Float64),
        pl.col("access_rate"),
        pl.col("adjusted_potential"),
        pl.col("decile").cast(pl.Int64),
        segment(pl.col("decile"), pl.col("brand_share"), basket_share).alias("segment"),
    ).sort("physician_id")


def targeting_list(segments: pl.DataFrame, physicians: pl.DataFrame) -> pl.DataFrame:
    """The physicians of deciles 8-10, ranked by adjusted potential (1 = highest; ties by
    physician_id), with who and where they are from ``physicians`` (physician_id,
    physician_name, specialty, state)."""
    import polars as pl

    return (
        segments.filter(pl.col("decile").is_in(TARGET_DECILES))
        .sort(["adjusted_potential", "physician_id"], descending=[True, False])
        .with_row_index("rank", offset=1)
        .join(
            physicians.select("physician_id", "physician_name", "specialty", "state"),
            on="physician_id",
            how="left",
        )
        .select(
            "physician_id",
            pl.col("rank").cast(pl.Int64),
            "decile",
            "segment",
            "physician_name",
            "specialty",
            "state",
        )
        .sort("rank")
    )


class BrandMismatchError(MeshError):
    """The brand asked for is not the brand the physician warehouse measured shares of."""


@port_builder("physician_segments", "targeting_list")
def build_segments(build: BuildContext) -> dict:
    """Access-adjusted deciles and segments of every physician active in the market basket,
    and the targeting list of the top three deciles."""
    con = build.con
    share_port = build.port("physician_dw/physician_brand_share")
    dim = build.port("physician_dw/dim_physician")
    brand = _measured_brand(build, share_port)
    share = con.execute(f"""
        select share.physician_id, dim.npi, share.basket_trx, share.brand_trx, share.brand_share
        from {share_port} as share
        inner join {dim} as dim using (physician_id)
    """).pl()
    access, scored = _access(build, share, brand)
    segments = segment_physicians(share, access)
    physicians = con.execute(
        f"select physician_id, physician_name, specialty, state from {dim}"
    ).pl()
    targets = targeting_list(segments, physicians)
    con.register("segments_frame", segments)
    con.register("targeting_frame", targets)
    build.stage("physician_segments", "select * from segments_frame")
    build.stage("targeting_list", "select * from targeting_frame")
    con.unregister("segments_frame")
    con.unregister("targeting_frame")
    counts = dict(segments.group_by("segment").len().iter_rows())
    metrics = {
        "brand": brand,
        "physicians": segments.height,
        "physicians_with_scored_claims": scored,
        "brand_basket_share": round(brand_basket_share(share), 6),
        **{f"segment_{name}": counts.get(name, 0) for name in SEGMENTS},
    }
    return {"physician_segments": metrics, "targeting_list": {"targets": targets.height}}


# what the access rates derive from: when the served segments were built from these very
# versions (and the same brand), their access rates are what computing them again would give
ACCESS_INPUTS = (
    "payer_dw/fact_claims",
    "payer_dw/dim_physician",
    "payer_dw/plan_access",
    "physician_dw/dim_physician",
)


def _access(build: BuildContext, share: pl.DataFrame, brand: str) -> tuple[pl.DataFrame, int]:
    """Each physician's access rate to ``brand`` (see :func:`access_rates`), and how many
    physicians have scored claims. A new week of Rx changes the shares, not the claims: when
    the served segments derive from the same claims, plans and physicians, for the same brand,
    and cover every physician of ``share``, their access rates are reused instead of
    aggregating every claim again."""
    con = build.con
    reused = build.unchanged_since_served("physician_segments", *ACCESS_INPUTS)
    before = {} if reused is None else build.served_metrics("physician_segments")
    scored = before.get("physicians_with_scored_claims")
    if scored is not None and before.get("brand") == brand:
        served = con.execute(
            f"select physician_id, access_rate from {build.served('physician_segments')}"
        ).pl()
        if share.join(served, on="physician_id", how="anti").is_empty():
            build.log.info(
                f"brand_analytics: claims, plans and physicians unchanged since version "
                f"{reused}: its access rates are reused"
            )
            build.metadata.setdefault("physician_segments", {})[
                "access_rates_reused_from_version"
            ] = reused
            return served, scored
    claims = con.execute(_paid_claims_sql(build)).pl()
    plan_access = con.execute(
        f"select plan_id, product, access_score from {build.port('payer_dw/plan_access')}"
    ).pl()
    access = access_rates(claims, plan_access, brand)
    return access, access.height


def _measured_brand(build: BuildContext, share_port: str) -> str:
    """The brand physician_dw measured shares of; it must be the brand this build is for."""
    brands = [
        b for (b,) in build.con.execute(f"select distinct brand from {share_port}").fetchall()
    ]
    wanted = build.params.get("brand")
    if len(brands) != 1 or (wanted and brands[0] != wanted):
        raise BrandMismatchError(
            f"brand_analytics: segments for brand {wanted!r} need shares of that brand, but "
            f"physician_dw/physician_brand_share measures {', '.join(map(str, brands)) or 'none'}. "
            f"Build physician_dw and brand_analytics with the same brand "
            f"(mesh build --set brand=...)."
        )
    return brands[0]


def _paid_claims_sql(build: BuildContext) -> str:
    """Paid claims not reversed since, per physician (physician_dw's id) and plan.

    Claims name payer_dw's physician; its NPI links it to physician_dw's dimension, so a
    prescriber is counted under the id the segments use (claims of prescribers unknown to the
    master carry no physician and are left out).
    """
    claims = build.port("payer_dw/fact_claims")
    payer_dim = build.port("payer_dw/dim_physician")
    dim = build.port("physician_dw/dim_physician")
    return f"""
        with reversed as (
            select distinct reversal_of as claim_id
            from {claims}
            where status = 'reversed' and reversal_of is not null
        ),
        paid as (
            select claims.physician_id, claims.plan_id
            from {claims} as claims
            anti join reversed using (claim_id)
            where claims.status = 'paid' and claims.physician_id is not null
        )
        select dim.physician_id, paid.plan_id, count(*)::bigint as claims
        from paid
        inner join {payer_dim} as payer_dim on payer_dim.physician_id = paid.physician_id
        inner join {dim} as dim on dim.npi = payer_dim.npi
        group by all
    """
