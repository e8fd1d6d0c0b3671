"""Cross-domain automation with Dagster's declarative automation: a published upstream port
requests the downstream ports; an upstream whose blocking contract check failed does not."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

from mesh_domains.platform.build import domain_job

pytestmark = pytest.mark.slow
DOWNSTREAM = {
    dg.AssetKey(["physician_dw", p])
    for p in ("dim_physician", "fact_rx_weekly", "physician_brand_share")
}


def global_graph() -> dg.Definitions:
    """What the workspace's global asset graph holds: every domain's executable assets, and
    the landing sources once (each code location names them as external assets)."""
    assets, external = [], {}
    for name in ("physician_master", "physician_dw"):
        defs = importlib.import_module(f"mesh_domains.{name}.definitions").defs
        for a in defs.assets:
            if isinstance(a, dg.AssetsDefinition) and a.is_executable:
                assets.append(a)
            elif isinstance(a, dg.AssetSpec) and a.key.path[0] == "landing":
                external[a.key] = a
    return dg.Definitions(assets=[*assets, *external.values()])


def requested(result) -> set[dg.AssetKey]:
    return {k for k in DOWNSTREAM if result.get_num_requested(k)}


def test_upstream_publish_requests_downstream_and_a_failed_check_does_not(mesh):
    defs = global_graph()
    assert mesh.run_job("physician_master").success
    assert mesh.run_job("physician_dw").success
    settled = dg.evaluate_automation_conditions(defs=defs, instance=mesh.instance)
    assert requested(settled) == set()  # everything is up to date

    # physician_master publishes a new version: all of physician_dw's ports are requested
    assert domain_job("physician_master").execute_in_process(instance=mesh.instance).success
    after_publish = dg.evaluate_automation_conditions(
        defs=defs, instance=mesh.instance, cursor=settled.cursor
    )
    assert requested(after_publish) == DOWNSTREAM

    # a new upstream materialization whose blocking contract check failed: nothing requested
    assert mesh.run_job("physician_dw").success
    settled = dg.evaluate_automation_conditions(
        defs=defs, instance=mesh.instance, cursor=after_publish.cursor
    )
    key = dg.AssetKey(["physician_master", "physicians"])
    mesh.instance.report_runless_asset_event(dg.AssetMaterialization(key))
    mesh.instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=key, check_name="contract", passed=False, severity=dg.AssetCheckSeverity.ERROR
        )
    )
    blocked = dg.evaluate_automation_conditions(
        defs=defs, instance=mesh.instance, cursor=settled.cursor
    )
    assert dg.AssetKey(["physician_dw", "dim_physician"]) not in requested(blocked)
    assert dg.AssetKey(["physician_dw", "fact_rx_weekly"]) not in requested(blocked)
