"""physician_dw (dbt) on tiny data: reads the master's ports across domains, dbt tests as
checks, contract before publish, input port versions recorded; the daily call fact next to the
weekly Rx fact (two partitionings: a job each), and the territory mart by the current alignment.

One tiny mesh is built once for the module's read-only tests; the tests that rebuild or build
out of order get a mesh of their own.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest
from mesh_harness import Mesh, built_copy

from mesh_domains.platform import lake
from mesh_domains.platform.build import domain_job
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

pytestmark = pytest.mark.slow
DOMAIN = "physician_dw"
UPSTREAM = ("physician_master", "reference")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Mesh]:
    """A tiny mesh with every domain built once (a copy of the test session's build): the
    master and the reference data, then the warehouse from them."""
    yield from built_copy(tmp_path_factory, "physician_dw")


def _runs(instance: dg.DagsterInstance, domain: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"mesh/domain": domain})))


def _check_evaluations(instance, run_ids):
    records = [
        r
        for run_id in run_ids
        for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    return [r.dagster_event.event_specific_data for r in records]


def _materialized(instance, run_id: str) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = record.dagster_event.event_specific_data.materialization
        out.setdefault(m.asset_key.path[-1], []).append(m.partition)
    return out


def _read(mesh: Mesh, sql: str, ports: dict[str, list[str]]) -> list[tuple]:
    """``sql`` over served ports (``{domain: [port, ...]}``), each a view named after the port,
    and the landing files of the calls as the view ``landing_calls``."""
    con = lake.connect()
    try:
        domains = discover_domains()
        for producer, names in ports.items():
            for port in names:
                lake.open_port(con, DOMAIN, domains[producer], port, view=port)
        files = str(mesh.paths.landing / "field_calls" / "*" / "field_calls.csv")
        con.execute(
            f"create view landing_calls as select * from read_csv('{files}', header = true)"
        )
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_dbt_domain_builds_from_the_published_master(built):
    """dbt builds the star schema from physician_master's published version, dbt tests and
    the pandera contract run before publish, and the versions read are recorded."""
    domains = discover_domains()
    master = port_status(built.instance, domains["physician_master"], "physicians")
    xref = port_status(built.instance, domains["physician_master"], "physician_xref")
    dim = port_status(built.instance, domains[DOMAIN], "dim_physician")
    assert dim.rows == master.rows
    assert dim.input_versions["physician_master/physicians"] == master.version
    assert dim.input_versions["physician_master/physician_xref"] == xref.version
    alignment = port_status(built.instance, domains["reference"], "territory_alignment")
    assert dim.input_versions["reference/territory_alignment"] == alignment.version
    evaluations = _check_evaluations(
        built.instance, [r.run_id for r in _runs(built.instance, DOMAIN)]
    )
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    assert ("dim_physician", "contract") in names
    assert ("dim_physician", "unique_dim_physician_npi") in names
    assert ("fact_calls", "contract") in names
    assert ("fact_calls", "unique_fact_calls_call_id") in names
    assert ("territory_performance", "contract") in names
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]


def test_two_partitionings_build_as_a_job_each(built):
    """The weekly Rx fact and the daily call fact cannot share a Dagster run: the build takes
    one run of build_physician_dw (weeks) and one of build_physician_dw__daily, which
    publishes exactly the days of calls delivered."""
    runs = {r.job_name: r for r in _runs(built.instance, DOMAIN)}
    assert set(runs) == {"build_physician_dw", "build_physician_dw__daily"}
    daily = _materialized(built.instance, runs["build_physician_dw__daily"].run_id)
    days = sorted(p.name for p in (built.paths.landing / "field_calls").iterdir())
    assert daily == {"fact_calls": days}
    weekly = _materialized(built.instance, runs["build_physician_dw"].run_id)
    assert "fact_calls" not in weekly and len(weekly["fact_rx_weekly"]) >= 1


def test_every_call_is_kept_with_the_golden_physician_of_its_crm_account(built):
    """Each delivered call appears once, with its rep, date, channel, product and samples; its
    physician is the master's mesh id for the CRM account, null for an account unknown to it."""
    ports = {DOMAIN: ["fact_calls"], "physician_master": ["physician_xref", "physicians"]}
    missing = _read(
        built,
        "select count(*) from landing_calls l anti join fact_calls f on f.call_id = l.call_id "
        "and f.crm_id = l.crm_id and f.rep_id = l.rep_id and f.call_date = l.call_date "
        "and f.channel = l.channel and f.product = l.product_detailed and f.samples = l.samples",
        ports,
    )
    counts = _read(
        built, "select (select count(*) from landing_calls), count(*) from fact_calls", ports
    )
    assert missing == [(0,)] and counts[0][0] == counts[0][1] > 0
    mapped = _read(
        built,
        "select count(*) filter (where f.physician_id is not distinct from x.mesh_id), "
        "count(*) filter (where f.physician_id is null), "
        "count(*) filter (where f.physician_id is not null and p.mesh_id is null) "
        "from fact_calls f left join (select * from physician_xref where source_system = 'crm') x "
        "on x.source_id = f.crm_id left join physicians p on p.mesh_id = f.physician_id",
        ports,
    )
    matched, unknown, dangling = mapped[0]
    assert matched == counts[0][1]  # every call: the xref's physician, or null without one
    assert dangling == 0 and matched > unknown


def test_consumer_reads_the_pinned_version_not_a_newer_one(mesh):
    """A build reads the input version current at its start, recorded as its input version;
    the producer's next version changes what the next consumer build records."""
    for domain in (*UPSTREAM, DOMAIN):
        assert mesh.run_job(domain).success
    domains = discover_domains()
    first = port_status(mesh.instance, domains[DOMAIN], "fact_rx_weekly").input_versions
    assert mesh.run_job("physician_master").success
    assert mesh.run_job(DOMAIN).success
    second = port_status(mesh.instance, domains[DOMAIN], "fact_rx_weekly").input_versions
    assert second["physician_master/physicians"] > first["physician_master/physicians"]


def test_consumer_without_a_built_producer_fails_clearly(mesh):
    """Building a consumer before its producer names the missing input and what to do."""
    result = mesh.run_job(DOMAIN)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "physician_master" in message.message and "build" in message.message


def test_published_marts_are_readable_by_a_granted_domain(built):
    """brand_analytics holds a grant on physician_dw's ports and can read them read-only."""
    con = lake.connect()
    alias = lake.attach_port_reader(
        con, "brand_analytics", discover_domains()[DOMAIN], ["physician_brand_share", "fact_calls"]
    )
    share = con.execute(
        f"select min(brand_share), max(brand_share), max(basket_decile) "
        f"from {alias}.main.physician_brand_share"
    ).fetchone()
    calls = con.execute(f"select count(*) from {alias}.main.fact_calls").fetchone()[0]
    con.close()
    assert 0 <= share[0] <= share[1] <= 1 and share[2] == 10
    assert calls > 0


def test_territory_performance_sums_rx_and_calls_by_the_current_alignment(built):
    """Every TRx and call of a physician whose zip3 the current alignment holds lands in that
    zip3's territory (with its district and region), nothing else does, and each territory's
    products share its basket TRx."""
    ports = {
        DOMAIN: ["fact_rx_weekly", "fact_calls", "territory_performance"],
        "physician_master": ["physicians"],
        "reference": ["territory_alignment"],
    }
    aligned = (
        "with placed as (select p.mesh_id as physician_id, a.territory, a.district, a.region "
        "from physicians p join territory_alignment a on a.zip3 = left(p.zip, 3) "
        "and a.is_current) "
    )
    expected = _read(
        built,
        aligned + "select territory, product, any_value(district), any_value(region), "
        "count(distinct physician_id), sum(trx), sum(calls), sum(samples) from ("
        "select physician_id, product, trx, 0 as calls, 0 as samples from fact_rx_weekly "
        "union all select physician_id, product, 0, 1, samples from fact_calls "
        "where physician_id is not null) join placed using (physician_id) "
        "group by all order by all",
        ports,
    )
    actual = _read(
        built,
        "select territory, product, district, region, physicians, trx, calls, samples "
        "from territory_performance order by all",
        ports,
    )
    assert len(actual) > 1 and actual == expected
    left_out = _read(
        built,
        aligned + "select (select sum(trx) from fact_rx_weekly) - "
        "(select sum(trx) from fact_rx_weekly join placed using (physician_id)), "
        "(select sum(trx) from territory_performance)",
        ports,
    )
    shares = _read(
        built,
        "select territory, sum(share_of_basket), sum(trx) from territory_performance group by 1",
        ports,
    )
    assert left_out[0][0] >= 0 and left_out[0][1] > 0
    assert all(abs(total - 1) < 1e-9 for _, total, trx in shares if trx > 0)


def _days_of_calls(mesh: Mesh) -> dict[str, tuple]:
    """fact_calls as served: an order-free digest of each day's rows."""
    rows = _read(
        mesh,
        "select call_date::varchar, count(*), sum(hash(call_id, physician_id, samples)) "
        "from fact_calls group by 1 order by 1",
        {DOMAIN: ["fact_calls"]},
    )
    return {day: (n, digest) for day, n, digest in rows}


def test_a_new_day_of_calls_publishes_only_that_day(built):
    """(Last: it adds a delivery.) The domain's arrival sensor sees a new day of calls and
    requests that day of fact_calls from the daily job; the run publishes exactly that day
    and every other day stays served as it was."""
    defs = importlib.import_module(f"mesh_domains.{DOMAIN}.definitions").defs
    sensor = defs.get_sensor_def(f"{DOMAIN}_arrivals")
    baseline = sensor(dg.build_sensor_context(instance=built.instance))
    assert baseline.run_requests == []  # the domain was built from what is there
    before = _days_of_calls(built)
    source, new_day = built.landing_file("field_calls", "2026-10-30"), "2026-11-01"
    target = built.paths.landing / "field_calls" / new_day / "field_calls.csv"
    target.parent.mkdir()
    con = duckdb.connect()
    con.execute(
        f"copy (select * replace ('CALL20261101' || call_id[13:] as call_id, "
        f"'{new_day}' as call_date) from read_csv('{source}', all_varchar = true)) "
        f"to '{target}' (header, delimiter ',')"
    )
    con.close()
    tick = sensor(dg.build_sensor_context(instance=built.instance, cursor=baseline.cursor))
    (request,) = tick.run_requests
    assert (request.job_name, request.partition_key) == ("build_physician_dw__daily", new_day)
    assert [k.path[-1] for k in request.asset_selection] == ["fact_calls"]
    result = domain_job(DOMAIN, request.job_name).execute_in_process(
        instance=built.instance,
        partition_key=request.partition_key,
        asset_selection=request.asset_selection,
        tags=request.tags,
        raise_on_error=False,
    )
    assert result.success
    assert _materialized(built.instance, result.run_id) == {"fact_calls": [new_day]}
    after = _days_of_calls(built)
    assert set(after) == set(before) | {new_day}
    assert {d: after[d] for d in before} == before
    assert after[new_day][0] == before["2026-10-30"][0]


@pytest.fixture
def own_mesh(tmp_path_factory) -> Iterator[Mesh]:
    """A copy of the session's built mesh for a test that adds deliveries."""
    yield from built_copy(tmp_path_factory, "physician_dw_weeks")


# the brand share from the published weekly facts, every week at once: what a full build gives
SHARE_FROM_FACTS = """
    with by_physician as (
        select physician_id, sum(trx) as basket_trx,
               sum(case when product = 'ZENVIRA' then trx else 0 end) as brand_trx,
               sum(case when is_projected then trx else 0 end) as projected_trx,
               count(distinct week_ending) as weeks_active
        from fact_rx_weekly group by physician_id
    )
    select physician_id, basket_trx, brand_trx, projected_trx, weeks_active,
           ntile(10) over (order by basket_trx, physician_id)
    from by_physician order by physician_id
"""
# each physician's activity per product from the published facts, every period at once
ACTIVITY_FROM_FACTS = """
    select physician_id, product, sum(nrx), sum(trx), sum(rx_weeks), sum(calls), sum(samples)
    from (
        select physician_id, product, nrx, trx, 1 as rx_weeks, 0 as calls, 0 as samples
        from fact_rx_weekly
        union all
        select physician_id, product, 0, 0, 0, 1, samples
        from fact_calls where physician_id is not null
    )
    group by all order by all
"""
ACTIVITY_SERVED = """
    select physician_id, product, nrx, trx, rx_weeks, calls, samples
    from physician_product_activity order by all
"""
SHARE_SERVED = """
    select physician_id, basket_trx, brand_trx, projected_trx, weeks_active, basket_decile
    from physician_brand_share order by physician_id
"""


def test_brand_share_is_built_from_the_weeks_that_changed_as_a_full_build_gives_it(own_mesh):
    """A new week of Rx, then a corrected earlier week (one prescriber's rows gone, the
    others' TRx doubled): each run publishes its week of the fact and builds the brand share
    from the served shares and only the week that changed (before and after), and the served
    shares are those every published week gives at once."""
    mesh = own_mesh
    ports = {
        DOMAIN: [
            "fact_rx_weekly",
            "fact_calls",
            "physician_brand_share",
            "physician_product_activity",
        ]
    }
    folder = mesh.paths.landing / "rx_weekly"
    weeks = sorted(p.name for p in folder.iterdir())
    new_week = str(date.fromisoformat(weeks[-1]) + timedelta(days=7))
    (folder / new_week).mkdir()
    con = duckdb.connect()
    con.execute(
        f"copy (select * replace ('{new_week}' as week_ending) from read_csv("
        f"'{folder / weeks[-1] / 'rx_weekly.csv'}', all_varchar = true)) "
        f"to '{folder / new_week / 'rx_weekly.csv'}' (header)"
    )
    corrected = folder / weeks[-2] / "rx_weekly.csv"
    rows = con.execute(f"select * from read_csv('{corrected}', all_varchar = true)").fetchall()
    gone = rows[0][0]
    con.execute(
        f"copy (select * replace ((trx::bigint * 2)::varchar as trx) from read_csv("
        f"'{corrected}', all_varchar = true) where prescriber_npi <> '{gone}') "
        f"to '{corrected}' (header)"
    )
    con.close()
    job = domain_job(DOMAIN)
    marts = ("physician_brand_share", "physician_product_activity", "territory_performance")
    selection = [dg.AssetKey([DOMAIN, p]) for p in ("fact_rx_weekly", *marts)]
    for week in (new_week, weeks[-2]):
        key = str(date.fromisoformat(week) - timedelta(days=6))  # a week's key is its Sunday
        result = job.execute_in_process(
            instance=mesh.instance,
            partition_key=key,
            asset_selection=selection,
            raise_on_error=False,
        )
        assert result.success
        assert _materialized(mesh.instance, result.run_id) == {
            "fact_rx_weekly": [key],
            **{mart: [None] for mart in marts},
        }
        said = [e.user_message for e in mesh.instance.all_logs(result.run_id)]
        assert any(
            "physician_brand_share, physician_product_activity built from the served version "
            "and the partitions" in m
            for m in said
        ), said
        assert _read(mesh, SHARE_SERVED, ports) == _read(mesh, SHARE_FROM_FACTS, ports)
        assert _read(mesh, ACTIVITY_SERVED, ports) == _read(mesh, ACTIVITY_FROM_FACTS, ports)
    weeks_of = dict(
        _read(mesh, "select week_ending::varchar, count(*) from fact_rx_weekly group by 1", ports)
    )
    assert new_week in weeks_of and weeks_of[weeks[-2]] < len(rows)
    # calls: a new day (the busiest day re-dated), and the busiest day corrected: the calls of
    # its first account are gone
    days = mesh.paths.landing / "field_calls"
    con = duckdb.connect()
    newest, busiest = con.execute(
        f"select max(call_date)::varchar, arg_max(call_date, n)::varchar from (select call_date, "
        f"count(*) as n from read_csv('{days}/*/field_calls.csv') group by 1)"
    ).fetchone()
    new_day = str(date.fromisoformat(newest) + timedelta(days=1))
    corrected = days / busiest / "field_calls.csv"
    (days / new_day).mkdir()
    con.execute(
        f"copy (select * replace ('CALL' || strftime(date '{new_day}', '%Y%m%d') || "
        f"call_id[13:] as call_id, '{new_day}' as call_date) from read_csv("
        f"'{corrected}', all_varchar = true)) to '{days / new_day / 'field_calls.csv'}' (header)"
    )
    con.execute(
        f"create table kept as select * from read_csv('{corrected}', all_varchar = true) "
        "where crm_id <> (select min(crm_id) from read_csv("
        f"'{corrected}', all_varchar = true))"
    )
    con.execute(f"copy kept to '{corrected}' (header)")
    con.close()
    daily = domain_job(DOMAIN, "build_physician_dw__daily")
    for day in (new_day, busiest):
        result = daily.execute_in_process(
            instance=mesh.instance,
            partition_key=day,
            asset_selection=[dg.AssetKey([DOMAIN, "fact_calls"])],
            raise_on_error=False,
        )
        assert result.success
    result = job.execute_in_process(
        instance=mesh.instance,
        asset_selection=[dg.AssetKey([DOMAIN, mart]) for mart in marts],
        raise_on_error=False,
    )
    assert result.success
    said = [e.user_message for e in mesh.instance.all_logs(result.run_id)]
    assert any("physician_product_activity built from the served version" in m for m in said)
    assert _read(mesh, ACTIVITY_SERVED, ports) == _read(mesh, ACTIVITY_FROM_FACTS, ports)
    calls_of = dict(
        _read(mesh, "select call_date::varchar, count(*) from fact_calls group by 1", ports)
    )
    assert new_day in calls_of and calls_of[busiest] < calls_of[new_day]
