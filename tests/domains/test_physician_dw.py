"""physician_dw (dbt) on tiny data: reads the master's port across domains, dbt tests as
checks, contract before publish, input port versions recorded."""

import dagster as dg
import pytest

from mesh_domains.platform import lake
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.status import port_status

pytestmark = pytest.mark.slow


def _check_evaluations(instance, run_id):
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return [r.dagster_event.event_specific_data for r in records]


def test_dbt_domain_builds_from_the_published_master(mesh):
    """dbt builds the star schema from physician_master's published version, dbt tests and
    the pandera contract run before publish, and the version read is recorded."""
    assert mesh.run_job("physician_master").success
    result = mesh.run_job("physician_dw")
    assert result.success
    domains = discover_domains()
    master = port_status(mesh.instance, domains["physician_master"], "physicians")
    dim = port_status(mesh.instance, domains["physician_dw"], "dim_physician")
    assert dim.rows == master.rows
    assert dim.input_versions == {"physician_master/physicians": master.version}
    evaluations = _check_evaluations(mesh.instance, result.run_id)
    names = {(e.asset_key.path[-1], e.check_name) for e in evaluations}
    assert ("dim_physician", "contract") in names
    assert ("dim_physician", "unique_dim_physician_npi") in names
    assert all(e.passed for e in evaluations)


def test_consumer_reads_the_pinned_version_not_a_newer_one(mesh):
    """A build reads the input version current at its start, recorded as its input version;
    the producer's next version changes what the next consumer build records."""
    assert mesh.run_job("physician_master").success
    assert mesh.run_job("physician_dw").success
    domains = discover_domains()
    first = port_status(mesh.instance, domains["physician_dw"], "fact_rx_weekly").input_versions
    assert mesh.run_job("physician_master").success
    assert mesh.run_job("physician_dw").success
    second = port_status(mesh.instance, domains["physician_dw"], "fact_rx_weekly").input_versions
    assert second["physician_master/physicians"] > first["physician_master/physicians"]


def test_consumer_without_a_built_producer_fails_clearly(mesh):
    """Building a consumer before its producer names the missing input and what to do."""
    result = mesh.run_job("physician_dw")
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "physician_master" in message.message and "build" in message.message


def test_published_marts_are_readable_by_a_granted_domain(mesh):
    """brand_analytics holds a grant on physician_dw's ports and can read them read-only."""
    assert mesh.run_job("physician_master").success
    assert mesh.run_job("physician_dw").success
    con = lake.connect()
    alias = lake.attach_port_reader(
        con, "brand_analytics", discover_domains()["physician_dw"], ["physician_brand_share"]
    )
    share = con.execute(
        f"select min(brand_share), max(brand_share), max(basket_decile) "
        f"from {alias}.main.physician_brand_share"
    ).fetchone()
    con.close()
    assert 0 <= share[0] <= share[1] <= 1 and share[2] == 10
