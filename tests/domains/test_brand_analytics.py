"""brand_analytics: its business rules on small polars frames, then one tiny build of the whole
chain (physician_master .. brand_analytics) that every mesh test below reads."""

from __future__ import annotations

import random
from datetime import date, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest
from mesh_harness import built_copy

from mesh_domains.brand_analytics.kpi_weekly import npp_weekly, week_ending, weekly_kpis
from mesh_domains.brand_analytics.physician_segments import (
    NO_CLAIMS_ACCESS_RATE,
    access_rates,
    ntile_deciles,
    segment_physicians,
    targeting_list,
)
from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

# ---------------------------------------------------------------- business rules (no mesh)


def _share(rows: list[tuple[str, int, int]]) -> pl.DataFrame:
    """physician_brand_share rows: (physician_id, basket_trx, brand_trx)."""
    return pl.DataFrame(
        {
            "physician_id": [r[0] for r in rows],
            "npi": [f"{i:010d}" for i in range(len(rows))],
            "basket_trx": [r[1] for r in rows],
            "brand_trx": [r[2] for r in rows],
            "brand_share": [r[2] / r[1] if r[1] else 0.0 for r in rows],
        },
        schema_overrides={"basket_trx": pl.Int64, "brand_trx": pl.Int64},
    )


NO_ACCESS = pl.DataFrame(
    schema={"physician_id": pl.String, "access_rate": pl.Float64},
)


@pytest.mark.parametrize("n", [1, 7, 10, 23, 101])
def test_deciles_are_sql_ntile_over_adjusted_potential(n):
    """The polars deciles equal DuckDB's ntile(10) ordered by the value then the id, ties and
    uneven group sizes included."""
    rng = random.Random(n)
    frame = pl.DataFrame({"physician_id": [f"P{i:04d}" for i in range(n)]}).with_columns(
        pl.Series("v", [float(rng.randint(0, 5)) for _ in range(n)])
    )
    ours = frame.with_columns(ntile_deciles(frame, "v", "physician_id").alias("decile"))
    con = duckdb.connect()
    con.register("t", frame)
    sql = con.execute(
        "select physician_id, ntile(10) over (order by v, physician_id) as decile from t"
    ).pl()
    joined = ours.join(sql, on="physician_id", suffix="_sql")
    assert joined.height == n
    assert (joined["decile"] == joined["decile_sql"]).all()
    assert ours["decile"].min() == 1 and ours["decile"].max() == min(n, 10)


def test_deciles_run_1_to_10_from_lowest_to_highest_adjusted_potential():
    """Twenty physicians: two per decile, the highest adjusted potential in decile 10."""
    share = _share([(f"P{i:02d}", 10 * (i + 1), i) for i in range(20)])
    segments = segment_physicians(share, NO_ACCESS)
    assert segments["decile"].to_list() == [d for d in range(1, 11) for _ in range(2)]
    top = segments.sort("adjusted_potential")[-1]
    assert top["decile"].item() == 10 and top["physician_id"].item() == "P19"
    assert segments["decile"].dtype == pl.Int64


def test_access_adjusts_potential_so_blocked_volume_ranks_lower():
    """Equal basket volume, different access: the better-covered physician ranks higher."""
    share = _share([("A", 100, 10), ("B", 100, 10)])
    access = pl.DataFrame({"physician_id": ["A", "B"], "access_rate": [0.2, 0.9]})
    segments = segment_physicians(share, access).sort("physician_id")
    assert segments["adjusted_potential"].to_list() == pytest.approx([20.0, 90.0])
    assert segments["decile"].to_list() == [1, 2]


def test_access_rate_is_weighted_by_claims_and_neutral_without_claims():
    """(3 claims at 1.0 + 1 claim at 0.2) / 4 = 0.8; a plan scored only for another product
    does not count; a physician without scored claims gets 0.5."""
    claims = pl.DataFrame(
        {
            "physician_id": ["A", "A", "A", "B"],
            "plan_id": ["P1", "P2", "P3", "P3"],
            "claims": [3, 1, 5, 2],
        }
    )
    plan_access = pl.DataFrame(
        {
            "plan_id": ["P1", "P2", "P3"],
            "product": ["ZENVIRA", "ZENVIRA", "HARTEX"],
            "access_score": [1.0, 0.2, 0.0],
        }
    )
    access = access_rates(claims, plan_access, "ZENVIRA")
    assert access.to_dicts() == [{"physician_id": "A", "access_rate": pytest.approx(0.8)}]
    segments = segment_physicians(_share([("A", 10, 1), ("B", 10, 1), ("C", 0, 0)]), access)
    rates = dict(segments.select("physician_id", "access_rate").iter_rows())
    assert rates == {"A": pytest.approx(0.8), "B": NO_CLAIMS_ACCESS_RATE, "C": 0.5}
    assert segments["access_rate"].is_between(0, 1).all()


@pytest.mark.parametrize(
    ("decile", "brand_trx", "expected"),
    [(10, 1, "grow"), (10, 9, "defend"), (6, 1, "grow"), (5, 9, "maintain"), (1, 1, "monitor")],
)
def test_segment_crosses_potential_with_share_against_the_brands_basket_share(
    decile, brand_trx, expected
):
    """High potential (decile >= 6) and share below the brand's basket share: grow; at or
    above it: defend; lower potential: maintain when ahead, monitor otherwise."""
    # ten physicians with rising volume, so physician i lands in decile i + 1; the brand's
    # basket share is 50% (brand_trx 5 of 10 everywhere except the physician under test)
    rows = [(f"P{i}", 10 * (i + 1), 5 * (i + 1)) for i in range(10)]
    i = decile - 1
    rows[i] = (f"P{i}", 10 * (i + 1), brand_trx * (i + 1))
    segments = segment_physicians(_share(rows), NO_ACCESS)
    row = segments.filter(pl.col("physician_id") == f"P{i}")
    assert row["decile"].item() == decile
    assert row["segment"].item() == expected
    assert set(segments["segment"]) <= {"grow", "defend", "maintain", "monitor"}


def test_targeting_list_holds_only_deciles_8_to_10_ranked_by_potential():
    """Thirty physicians: the nine of deciles 8-10, rank 1 = the highest adjusted potential."""
    share = _share([(f"P{i:02d}", i + 1, 0) for i in range(30)])
    segments = segment_physicians(share, NO_ACCESS)
    physicians = pl.DataFrame(
        {
            "physician_id": share["physician_id"],
            "physician_name": [f"Dr {i}" for i in range(30)],
            "specialty": "Cardiology",
            "state": "MA",
        }
    )
    targets = targeting_list(segments, physicians)
    assert targets.height == 9
    assert set(targets["decile"]) == {8, 9, 10}
    assert targets["rank"].to_list() == list(range(1, 10))
    assert targets["physician_id"][0] == "P29" and targets["physician_name"][0] == "Dr 29"
    assert targets.columns == [
        "physician_id",
        "rank",
        "decile",
        "segment",
        "physician_name",
        "specialty",
        "state",
    ]


SAT1, SAT2 = date(2026, 10, 24), date(2026, 10, 31)


def _kpi_inputs():
    rx = pl.DataFrame(
        {
            "week_ending": [SAT1, SAT1, SAT1, SAT2],
            "product": ["ZENVIRA", "HARTEX", "VASOPRIN", "ZENVIRA"],
            "nrx": [2, 5, 1, 0],
            "trx": [10, 25, 15, 0],
        }
    )
    claims = pl.DataFrame(
        {
            "week_ending": [SAT1, SAT2],
            "product": ["ZENVIRA", "CARDIOLEX"],
            "paid_claims": [7, 3],
            "reversed_claims": [1, 0],
        }
    )
    net = pl.DataFrame({"week_ending": [SAT1], "product": ["ZENVIRA"], "net_sales": [1234.567]})
    npp = npp_weekly(
        pl.DataFrame(
            {
                "activity_date": [date(2026, 10, 18), SAT1, date(2026, 10, 25)],
                "product": ["ZENVIRA"] * 3,
                "sends": [100, 50, 7],
                "clicks": [4, 1, 2],
            }
        )
    )
    return rx, claims, net, npp


def test_npp_days_fold_into_the_week_ending_saturday():
    """Sunday 18th and Saturday 24th belong to the week ending the 24th; Sunday 25th to the
    week ending the 31st."""
    *_, npp = _kpi_inputs()
    assert sorted(npp.iter_rows()) == [(SAT1, "ZENVIRA", 150, 5), (SAT2, "ZENVIRA", 7, 2)]


def test_share_of_basket_is_within_0_and_1_and_sums_to_1_per_week():
    """Each product's TRx over the week's basket TRx; null in a week without basket TRx."""
    kpis = weekly_kpis(*_kpi_inputs())
    week1 = kpis.filter(pl.col("week_ending") == SAT1)
    assert week1["share_of_basket"].sum() == pytest.approx(1.0)
    zen = week1.filter(pl.col("product") == "ZENVIRA")
    assert zen["share_of_basket"].item() == pytest.approx(0.2)
    shares = kpis["share_of_basket"].drop_nulls()
    assert shares.is_between(0, 1).all()
    week2 = kpis.filter(pl.col("week_ending") == SAT2)
    assert week2["share_of_basket"].null_count() == week2.height


def test_weekly_kpis_put_every_input_side_by_side_with_zeros_for_gaps():
    """A product seen only in claims still gets a row (no TRx); money rounds to cents."""
    kpis = weekly_kpis(*_kpi_inputs())
    assert kpis.select("week_ending", "product").is_duplicated().sum() == 0
    row = kpis.filter((pl.col("week_ending") == SAT1) & (pl.col("product") == "ZENVIRA"))
    assert row.select(
        "trx", "paid_claims", "reversed_claims", "net_sales", "npp_sends", "npp_clicks"
    ).row(0) == (10, 7, 1, 1234.57, 150, 5)
    cardiolex = kpis.filter(pl.col("product") == "CARDIOLEX").to_dicts()
    assert cardiolex == [
        {
            "week_ending": SAT2,
            "product": "CARDIOLEX",
            "nrx": 0,
            "trx": 0,
            "share_of_basket": None,
            "paid_claims": 3,
            "reversed_claims": 0,
            "net_sales": 0.0,
            "npp_sends": 0,
            "npp_clicks": 0,
        }
    ]
    assert dict(kpis.schema) == {
        "week_ending": pl.Date,
        "product": pl.String,
        "nrx": pl.Int64,
        "trx": pl.Int64,
        "share_of_basket": pl.Float64,
        "paid_claims": pl.Int64,
        "reversed_claims": pl.Int64,
        "net_sales": pl.Float64,
        "npp_sends": pl.Int64,
        "npp_clicks": pl.Int64,
    }


# ---------------------------------------------------------------- the domain in a tiny mesh

CHAIN = (
    "physician_master",
    "reference",
    "payer_master",
    "physician_dw",
    "payer_dw",
    "npp",
    "brand_analytics",
)
BRAND = "ZENVIRA"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Every domain brand_analytics reads from, and brand_analytics, built on tiny data (a
    copy of the session's built mesh); with the run that built brand_analytics."""
    for mesh in built_copy(tmp_path_factory, "brand_analytics"):
        runs = mesh.instance.get_runs(dg.RunsFilter(tags={"mesh/domain": "brand_analytics"}))
        assert runs and set(discover_domains()) == set(CHAIN)
        yield mesh, [r.run_id for r in runs]


def _port(ref: str, version: int | None = None) -> pl.DataFrame:
    """A published port as brand_analytics reads it (grants checked)."""
    producer, port = ref.split("/")
    con = lake.connect()
    try:
        view, _ = lake.open_port(
            con, "brand_analytics", discover_domains()[producer], port, version
        )
        return con.execute(f"select * from {view}").pl()
    finally:
        con.close()


@pytest.mark.slow
def test_every_contract_passes_and_every_input_is_pinned(chain):
    """The build's blocking contract checks all pass, all three ports are published, and the
    version records the eight input ports it read."""
    mesh, run_ids = chain
    records = [
        record
        for run_id in run_ids
        for record in mesh.instance.all_logs(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    evaluations = [r.dagster_event.event_specific_data for r in records]
    contracts = {e.asset_key.path[-1] for e in evaluations if e.check_name == "contract"}
    assert contracts == {"physician_segments", "targeting_list", "kpi_weekly"}
    assert all(e.passed for e in evaluations)
    domain = discover_domains()["brand_analytics"]
    for port in ("physician_segments", "targeting_list", "kpi_weekly"):
        status = port_status(mesh.instance, domain, port)
        assert status.rows > 0
        assert set(status.input_versions) == {ref.ref for ref in domain.input_ports}


@pytest.mark.slow
def test_segments_cover_every_physician_with_brand_activity(chain):
    """Every physician of physician_dw's dimension with a row in the brand-share mart has a
    segment, deciles run 1..10, claims moved some access rates off the neutral 0.5, and the
    targeting list is exactly deciles 8-10."""
    dim = _port("physician_dw/dim_physician")
    share = _port("physician_dw/physician_brand_share")
    segments = _port("brand_analytics/physician_segments")
    targets = _port("brand_analytics/targeting_list")
    active = set(share["physician_id"]) & set(dim["physician_id"])
    assert active and set(segments["physician_id"]) == active
    assert sorted(segments["decile"].unique()) == list(range(1, 11))
    assert segments["access_rate"].is_between(0, 1).all()
    assert (segments["access_rate"] != NO_CLAIMS_ACCESS_RATE).any()
    top = segments.filter(pl.col("decile") >= 8)
    assert set(targets["physician_id"]) == set(top["physician_id"])
    assert sorted(targets["rank"]) == list(range(1, targets.height + 1))


@pytest.mark.slow
def test_kpi_trx_per_week_is_the_sum_of_fact_rx_weekly_for_the_brand(chain):
    """The brand's weekly TRx and NRx in kpi_weekly equal physician_dw's Rx facts summed by week."""
    rx = _port("physician_dw/fact_rx_weekly").filter(pl.col("product") == BRAND)
    expected = rx.group_by("week_ending").agg(pl.col("nrx").sum(), pl.col("trx").sum())
    kpis = _port("brand_analytics/kpi_weekly").filter(pl.col("product") == BRAND)
    got = kpis.select("week_ending", "nrx", "trx")
    assert dict(got.select("week_ending", "trx").iter_rows()) == dict(
        expected.select("week_ending", "trx").iter_rows()
    )
    assert dict(got.select("week_ending", "nrx").iter_rows()) == dict(
        expected.select("week_ending", "nrx").iter_rows()
    )
    assert kpis["share_of_basket"].drop_nulls().is_between(0, 1).all()


@pytest.mark.slow
def test_kpi_weeks_are_the_weeks_its_inputs_hold(chain):
    """mesh build publishes one kpi_weekly partition per week any input port holds, each
    ending on a Saturday."""
    mesh, _ = chain
    weeks = set(_port("physician_dw/fact_rx_weekly")["week_ending"])
    weeks |= set(_port("payer_dw/fact_claims")["week_ending"])
    weeks |= set(_port("payer_dw/gross_to_net")["week_ending"])
    npp = _port("npp/engagement_daily").select(week_ending(pl.col("activity_date")))
    weeks |= set(npp["activity_date"])
    published = set(_port("brand_analytics/kpi_weekly")["week_ending"])
    assert published == weeks
    assert {w.weekday() for w in published} == {5}
    materialized = mesh.instance.get_materialized_partitions(
        dg.AssetKey(["brand_analytics", "kpi_weekly"])
    )
    assert {date.fromisoformat(k) + timedelta(days=6) for k in materialized} == weeks


@pytest.mark.slow
def test_a_scoped_build_stages_and_replaces_only_its_week(chain):
    """Building one week stages only that week's rows and republishes exactly them: every
    other week is served as before."""
    mesh, _ = chain
    domain = discover_domains()["brand_analytics"]
    version = port_status(mesh.instance, domain, "kpi_weekly").version
    before = _port("brand_analytics/kpi_weekly").sort("week_ending", "product")
    saturday = sorted(set(before["week_ending"]))[len(set(before["week_ending"])) // 2]
    sunday = saturday - timedelta(days=6)
    result = mesh.run_job("brand_analytics", window=(sunday, saturday))
    assert result.success
    con = duckdb.connect(str(mesh.paths.staging_db("brand_analytics")), read_only=True)
    staged = con.execute("select distinct week_ending from main.kpi_weekly").fetchall()
    con.close()
    assert staged == [(saturday,)]
    after = _port("brand_analytics/kpi_weekly").sort("week_ending", "product")
    assert after.equals(before)
    assert port_status(mesh.instance, domain, "kpi_weekly").version > version
    event = mesh.instance.get_latest_materialization_event(
        dg.AssetKey(["brand_analytics", "kpi_weekly"])
    )
    assert event.asset_materialization.metadata["partitions"].value == [sunday.isoformat()]


def _segments_metadata(mesh) -> dict:
    event = mesh.instance.get_latest_materialization_event(
        dg.AssetKey(["brand_analytics", "physician_segments"])
    )
    return event.asset_materialization.metadata


@pytest.mark.slow
def test_access_rates_are_reused_only_while_claims_plans_and_physicians_are_unchanged(chain):
    """A rebuild from the same claims, plans and physicians (a new week of Rx changes only the
    shares) reuses the served access rates and gives exactly the rows computing them again
    gives; a new version of payer_dw's ports computes them again."""
    mesh, _ = chain
    domain = discover_domains()["brand_analytics"]
    served = port_status(mesh.instance, domain, "physician_segments").version
    before = _port("brand_analytics/physician_segments").sort("physician_id")
    assert mesh.run_job("brand_analytics").success
    meta = _segments_metadata(mesh)
    assert meta["access_rates_reused_from_version"].value == served
    assert meta["mesh/unchanged"].value is True  # the very rows computing them gives
    scored = meta["physicians_with_scored_claims"].value
    assert scored > 0  # carried over from the served version's build

    assert mesh.run_job("payer_dw").success  # new versions of the claims and plans
    assert mesh.run_job("brand_analytics").success
    meta = _segments_metadata(mesh)
    assert "access_rates_reused_from_version" not in meta
    assert meta["physicians_with_scored_claims"].value == scored
    after = _port("brand_analytics/physician_segments").sort("physician_id")
    assert after.equals(before)
