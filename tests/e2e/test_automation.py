"""Cross-domain automation, one mechanism per edge: a published upstream port starts its
consumer exactly once through the consumer's process-linkage sensor; a new version of the same
rows, or an upstream materialization that is not a passing published port version, starts
nothing; and no port
carries declarative automation on another domain's ports (which would start it twice)."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

from mesh_domains.platform.build import domain_job

pytestmark = pytest.mark.slow
PHYSICIANS = dg.AssetKey(["physician_master", "physicians"])


def linkage():
    defs = importlib.import_module("mesh_domains.physician_dw.definitions").defs
    return defs.get_sensor_def("physician_dw_linkage")


def tick(sensor, instance, cursor):
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    return result.run_requests, result.cursor


def test_an_upstream_publish_starts_the_consumer_once_and_nothing_else_does(mesh):
    sensor = linkage()
    assert mesh.run_job("physician_master").success
    assert mesh.run_job("reference").success
    assert mesh.run_job("physician_dw").success
    requests, cursor = tick(sensor, mesh.instance, None)
    assert requests == []  # the first tick takes what was built as handled

    # a rebuild from the same inputs: new versions of the same rows, nothing for consumers
    same = domain_job("physician_master").execute_in_process(instance=mesh.instance)
    assert same.success
    requests, cursor = tick(sensor, mesh.instance, cursor)
    assert requests == []

    # a run with a parameter: the consumer's run carries it, as a tag and as its steps' config
    # (handed over even when the rows are the same: the parameter may change the consumer's)
    with_param = mesh.run_job("physician_master", params={"as_of": "2026-10-31"})
    assert with_param.success
    requests, cursor = tick(sensor, mesh.instance, cursor)
    assert len(requests) == 1  # one run for two ports published together
    assert requests[0].run_key == f"linkage:{with_param.run_id}"
    assert requests[0].tags["mesh/upstream_domain"] == "physician_master"
    assert {k.path[-1] for k in requests[0].asset_selection} == {
        "dim_physician",
        "physician_brand_share",
        "physician_product_activity",
        "territory_performance",
    }  # no new delivery: neither the weekly nor the daily fact has a partition to rebuild
    assert requests[0].tags["mesh/param/as_of"] == "2026-10-31"
    configs = [op["config"] for op in requests[0].run_config["ops"].values()]
    assert configs and all(c == {"as_of": "2026-10-31"} for c in configs)
    handed = domain_job("physician_dw").execute_in_process(
        instance=mesh.instance,
        asset_selection=requests[0].asset_selection,
        tags=requests[0].tags,
        run_config=requests[0].run_config,
    )
    assert handed.success
    meta = mesh.instance.get_latest_materialization_event(
        dg.AssetKey(["physician_dw", "dim_physician"])
    ).asset_materialization.metadata
    assert meta["variation_detail"].value["params"]["as_of"] == "2026-10-31"
    requests, cursor = tick(sensor, mesh.instance, cursor)
    assert requests == []  # exactly once

    # a materialization that is not a published port version (no contract, no version)
    mesh.instance.report_runless_asset_event(dg.AssetMaterialization(PHYSICIANS))
    requests, cursor = tick(sensor, mesh.instance, cursor)
    assert requests == []


def test_ports_leave_other_domains_and_landing_to_the_sensors():
    """The eager condition of every port ignores its cross-domain and landing dependencies."""
    defs = importlib.import_module("mesh_domains.physician_dw.definitions").defs
    graph = defs.resolve_asset_graph()
    dim = graph.get(dg.AssetKey(["physician_dw", "dim_physician"])).automation_condition
    text = str(dim)
    assert "ignore_selection=KeysAssetSelection(selected_keys=[AssetKey(['physician_master'" in text
    assert "all_deps_blocking_checks_passed" in text
    assert "in_latest_time_window" not in text
