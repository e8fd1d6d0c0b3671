"""Variations end to end: a new week of Rx flows through exactly the partitions it touches,
three domain levels deep (physician_master → physician_dw → brand_analytics), and nowhere else
(payer_dw reads only the master's physicians, whose content the week does not change).

The real sensors of the real code locations are evaluated against a real instance, and the
runs they request are executed as requested (selection, partition range, tags, config):

arrival sensor (physician_master) → physician_master publishes, naming the landing partitions
it consumed anew → process-linkage sensor (physician_dw) → one physician_dw run that publishes
only those weeks of ``fact_rx_weekly`` and, once, the unpartitioned ports that read the fact.
"""

from __future__ import annotations

import importlib
import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from mesh_domains.platform import lake
from mesh_domains.platform.build import domain_job
from mesh_domains.platform.descriptor import discover_domains

pytestmark = pytest.mark.slow
NEW_WEEK = "2026-11-07"  # a Saturday after the generated weeks
NEW_KEY = "2026-11-01"  # its partition key: the week's first day


def defs_of(domain: str) -> dg.Definitions:
    return importlib.import_module(f"mesh_domains.{domain}.definitions").defs


class Sensor:
    """One sensor of a code location, ticked by hand with its cursor kept, as the daemon does."""

    def __init__(self, mesh, domain: str, name: str):
        self.mesh, self.domain = mesh, domain
        self.sensor = defs_of(domain).get_sensor_def(f"{domain}_{name}")
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.mesh.instance, cursor=self.cursor)
        result = self.sensor(context)
        self.cursor = result.cursor
        for event in result.asset_events or ():
            self.mesh.instance.report_runless_asset_event(event)
        return result


def execute(mesh, domain: str, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run a sensor's request as the daemon would launch it."""
    return domain_job(domain).execute_in_process(
        instance=mesh.instance,
        asset_selection=request.asset_selection,
        partition_key=request.partition_key,
        tags={**request.tags, "dagster/sensor_run_key": request.run_key or ""},
        run_config=request.run_config or None,
        raise_on_error=False,
    )


def materialized(mesh, run_id: str) -> dict[str, list[str | None]]:
    """Port -> partition keys materialized by a run."""
    out: dict[str, list[str | None]] = {}
    records = mesh.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    for record in records:
        m = record.dagster_event.event_specific_data.materialization
        out.setdefault(m.asset_key.path[-1], []).append(m.partition)
    return out


def weeks_served(mesh) -> dict[str, tuple]:
    """physician_dw/fact_rx_weekly as served: an order-free digest of each week's rows."""
    con = lake.connect()
    view, _ = lake.open_port(
        con, "physician_dw", discover_domains()["physician_dw"], "fact_rx_weekly"
    )
    rows = con.execute(
        f"select week_ending::varchar, count(*), sum(hash(physician_id, product, nrx, trx)) "
        f"from {view} group by 1 order by 1"
    ).fetchall()
    con.close()
    return {w: (n, h) for w, n, h in rows}


def deliver_week(mesh, week: str, *, damage: str | None = None) -> Path:
    """A new weekly Rx delivery: the newest week's file, re-dated (and damaged if asked)."""
    newest = mesh.landing_file("rx_weekly")
    target = mesh.paths.landing / "rx_weekly" / week / "rx_weekly.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"create table t as select * replace (date '{week}' as week_ending) "
        f"from read_csv('{newest}', all_varchar = true)"
    )
    if damage:
        con.execute(damage)
    con.execute(f"copy t to '{target}' (header, delimiter ',')")
    con.close()
    return target


@pytest.fixture(scope="module")
def flow(built_mesh):
    """The built tiny mesh with its sensors ticked once (the daemon's first tick)."""
    sensors = {
        "arrivals": Sensor(built_mesh, "physician_master", "arrivals"),
        "linkage": Sensor(built_mesh, "physician_dw", "linkage"),
        "payer_dw": Sensor(built_mesh, "payer_dw", "linkage"),
        "brand_analytics": Sensor(built_mesh, "brand_analytics", "linkage"),
    }
    for sensor in sensors.values():
        assert sensor.tick().run_requests == []  # everything built already
    return built_mesh, sensors


def propagate(mesh, sensors) -> tuple[dg.ExecuteInProcessResult, dg.ExecuteInProcessResult]:
    """One arrival: the master's run, then the warehouse's run that process linkage starts."""
    arrival = sensors["arrivals"].tick()
    assert len(arrival.run_requests) == 1, arrival.run_requests
    master = execute(mesh, "physician_master", arrival.run_requests[0])
    assert master.success
    assert sensors["arrivals"].tick().run_requests == []  # a re-scan requests nothing new
    linkage = sensors["linkage"].tick()
    assert len(linkage.run_requests) == 1, linkage.run_requests  # exactly once per publish
    request = linkage.run_requests[0]
    assert request.tags["mesh/upstream_run"] == master.run_id
    warehouse = execute(mesh, "physician_dw", request)
    assert warehouse.success
    assert sensors["linkage"].tick().run_requests == []
    return master, warehouse


def test_a_new_week_publishes_only_that_week_downstream(flow):
    """A new weekly delivery: the master rebuilds once (it is unpartitioned) and names the
    landing partition it consumed anew; its physicians are unchanged (no new prescriber), so
    the warehouse publishes only that week of the partitioned fact and, once, the marts that
    read the fact (not its physician dimension); every other week stays as it was."""
    mesh, sensors = flow
    before = weeks_served(mesh)
    deliver_week(mesh, NEW_WEEK)
    master, warehouse = propagate(mesh, sensors)
    physicians = mesh.instance.get_latest_materialization_event(
        dg.AssetKey(["physician_master", "physicians"])
    ).asset_materialization.metadata
    assert physicians["mesh/changed"].value == {"landing/rx_weekly": [NEW_KEY]}
    assert physicians["mesh/unchanged"].value is True  # a new version of the same rows
    assert materialized(mesh, warehouse.run_id) == {
        "fact_rx_weekly": [NEW_KEY],
        "physician_brand_share": [None],
        "physician_product_activity": [None],
        "territory_performance": [None],
    }  # and no day of fact_calls: no call was delivered
    after = weeks_served(mesh)
    assert set(after) == set(before) | {NEW_WEEK}
    assert {w: after[w] for w in before} == before
    landing = mesh.instance.get_latest_materialization_event(dg.AssetKey(["landing", "rx_weekly"]))
    assert landing.asset_materialization.partition == NEW_KEY
    assert landing.asset_materialization.tags[DATA_VERSION_TAG]

    # payer_dw reads the master's physicians only: same content, nothing to rebuild; the third
    # level, brand_analytics, follows physician_dw once and publishes only the new week of its
    # weekly KPIs, from warehouses that still agree on the physician master (no drift)
    assert sensors["payer_dw"].tick().run_requests == []
    requests = sensors["brand_analytics"].tick().run_requests
    assert [r.tags["mesh/upstream_run"] for r in requests] == [warehouse.run_id]
    kpi_partitions = []
    for request in requests:
        run = execute(mesh, "brand_analytics", request)
        assert run.success
        kpi_partitions += materialized(mesh, run.run_id).get("kpi_weekly", [])
    assert kpi_partitions == [NEW_KEY]
    assert sensors["brand_analytics"].tick().run_requests == []


def test_a_corrected_old_week_republishes_that_week_only(flow):
    """A corrected re-delivery of an earlier week replaces that week and nothing else."""
    mesh, sensors = flow
    old = sorted(p.name for p in (mesh.paths.landing / "rx_weekly").iterdir())[0]
    before = weeks_served(mesh)
    path = mesh.paths.landing / "rx_weekly" / old / "rx_weekly.csv"
    lines = path.read_text().splitlines()
    fields = lines[1].split(",")
    fields[4] = str(int(fields[4]) + 5)  # the supplier corrects one TRx
    path.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")
    _, warehouse = propagate(mesh, sensors)
    key = (date.fromisoformat(old) - timedelta(days=6)).isoformat()  # the week's first day
    assert materialized(mesh, warehouse.run_id)["fact_rx_weekly"] == [key]
    after = weeks_served(mesh)
    assert after[old] != before[old]
    assert {w: v for w, v in after.items() if w != old} == {
        w: v for w, v in before.items() if w != old
    }


def test_a_bad_week_fails_that_partition_and_every_week_stays_served(flow):
    """A delivery with a broken row stops the master (nothing published, nothing started
    downstream); building that week's partition of the warehouse fails too, and every week
    served before is served unchanged."""
    mesh, sensors = flow
    before = weeks_served(mesh)
    served = json.loads(lake.pointer_path("physician_dw").read_text())["ports"]["fact_rx_weekly"]
    bad = deliver_week(mesh, "2026-11-14", damage="update t set nrx = '-3' where rowid = 0")
    arrival = sensors["arrivals"].tick()
    master = execute(mesh, "physician_master", arrival.run_requests[0])
    assert not master.success
    assert sensors["linkage"].tick().run_requests == []  # nothing published: nobody starts
    week = (date(2026, 11, 8), date(2026, 11, 14))
    warehouse = mesh.run_job("physician_dw", window=week)
    assert not warehouse.success
    assert weeks_served(mesh) == before
    pointer = json.loads(lake.pointer_path("physician_dw").read_text())
    assert pointer["ports"]["fact_rx_weekly"] == served  # the fact's version did not move
    bad.unlink()  # the supplier withdraws it
    bad.parent.rmdir()


def test_a_manual_old_partition_propagates_inside_the_domain(flow):
    """Declarative automation inside a domain is not limited to the newest week: a manual
    re-materialization of an old week of the fact requests the brand-share mart, and no other
    week of the fact."""
    mesh, _ = flow
    defs = defs_of("physician_dw")
    settled = dg.evaluate_automation_conditions(defs=defs, instance=mesh.instance)
    old_key = sorted(
        mesh.instance.get_materialized_partitions(dg.AssetKey(["physician_dw", "fact_rx_weekly"]))
    )[0]
    result = domain_job("physician_dw").execute_in_process(
        instance=mesh.instance,
        partition_key=old_key,
        asset_selection=[dg.AssetKey(["physician_dw", "fact_rx_weekly"])],
    )
    assert result.success
    after = dg.evaluate_automation_conditions(
        defs=defs, instance=mesh.instance, cursor=settled.cursor
    )
    share = dg.AssetKey(["physician_dw", "physician_brand_share"])
    fact = dg.AssetKey(["physician_dw", "fact_rx_weekly"])
    assert after.get_num_requested(share) == 1
    assert after.get_num_requested(fact) == 0
    assert after.get_num_requested(dg.AssetKey(["physician_dw", "dim_physician"])) == 0


def test_a_week_with_a_new_prescriber_rebuilds_the_physician_dimensions(flow):
    """A week naming a prescriber no delivery named before changes the master's rows: the
    warehouse rebuilds its physician dimension in the same run as that week (the fact's
    relationship test needs the new physician), payer_dw follows the master, and
    brand_analytics, which reads both warehouses, is started once for both."""
    mesh, sensors = flow
    deliver_week(
        mesh, "2026-11-21", damage="update t set prescriber_npi = '1234567893' where rowid = 0"
    )
    master, warehouse = propagate(mesh, sensors)
    physicians = mesh.instance.get_latest_materialization_event(
        dg.AssetKey(["physician_master", "physicians"])
    ).asset_materialization.metadata
    assert "mesh/unchanged" not in physicians
    assert materialized(mesh, warehouse.run_id) == {
        "dim_physician": [None],
        "fact_rx_weekly": ["2026-11-15"],
        "physician_brand_share": [None],
        "physician_product_activity": [None],
        "territory_performance": [None],
    }
    con = lake.connect()
    view, _ = lake.open_port(
        con, "physician_dw", discover_domains()["physician_dw"], "dim_physician"
    )
    assert con.execute(f"select count(*) from {view} where npi = '1234567893'").fetchone() == (1,)
    con.close()
    payer = sensors["payer_dw"].tick().run_requests
    assert [r.tags["mesh/upstream_run"] for r in payer] == [master.run_id]
    assert "dim_physician" in {k.path[-1] for r in payer for k in r.asset_selection}
    payer_run = execute(mesh, "payer_dw", payer[0])
    assert payer_run.success
    # both warehouses published since brand_analytics last looked: it builds once, for both
    requests = sensors["brand_analytics"].tick().run_requests
    assert len(requests) == 1
    assert {warehouse.run_id, payer_run.run_id} <= set(
        requests[0].tags["mesh/upstream_runs"].split(",")
    )
    assert "2026-11-15" in requests[0].tags["mesh/partitions"].split(",")
