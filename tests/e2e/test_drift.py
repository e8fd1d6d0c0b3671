"""Data linkage without drift, on the real mesh: brand_analytics joins physician_dw and payer_dw,
which both derive their physician dimension from physician_master/physicians.

Rebuilding physician_master from the same inputs publishes the same content (no drift); a new
AMA file changes it, and rebuilding only physician_dw leaves the two warehouses built from
different versions of the master: brand_analytics refuses to publish and names both paths; its dev
variation (``on_drift: pin_consistent``) publishes from the newest set that agrees; once payer_dw
catches up, the CI build publishes from the newest versions.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
from mesh_harness import environment

from mesh_domains.platform import lake

pytestmark = pytest.mark.slow
PHYSICIANS = "physician_master/physicians"


def served(domain: str) -> dict[str, lake.Served]:
    return lake.served_ports(domain)


def commit_info(domain: str, version: int) -> dict:
    con = lake.connect()
    lake.attach_own_lake(con, domain)
    (extra,) = con.execute(
        f"select commit_extra_info from {lake.lake_alias(domain)}.snapshots() "
        "where snapshot_id = ?",
        [version],
    ).fetchone()
    con.close()
    return json.loads(extra)


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failure = event.step_failure_data
            texts.append(failure.error.message)
            if failure.user_failure_data:
                texts.append(failure.user_failure_data.description or "")
    return "\n".join(texts)


def amend_ama(mesh) -> None:
    """The AMA file is re-delivered with one physician's status changed."""
    path = mesh.landing_file("ama_physician")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[1].split(",")
    column = header.index("status")
    fields[column] = "retired" if fields[column] != "retired" else "active"
    path.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")


def test_drifted_warehouses_are_refused_pinned_in_dev_and_published_after_catch_up(built_mesh):
    mesh = built_mesh  # every domain built once, from the same master version
    physicians_v1 = served("physician_master")["physicians"].version
    payer_dim = served("payer_dw")["dim_physician"]
    assert payer_dim.lineage[PHYSICIANS] == physicians_v1  # the pointer carries the lineage
    segments_v1 = served("brand_analytics")["physician_segments"].version
    assert commit_info("brand_analytics", segments_v1)["lineage"][PHYSICIANS] == physicians_v1

    # a rebuild from the same inputs publishes the same content: no drift, nobody is behind
    assert mesh.run_job("physician_master").success
    same = served("physician_master")["physicians"]
    assert same.version > physicians_v1 and same.content_version == physicians_v1
    assert mesh.run_job("brand_analytics").success
    segments_v1 = served("brand_analytics")["physician_segments"].version

    # a new AMA file changes the master; only physician_dw is rebuilt: the warehouses drift apart
    amend_ama(mesh)
    assert mesh.run_job("physician_master").success
    physicians_v2 = served("physician_master")["physicians"].version
    assert physicians_v2 > same.version
    assert served("physician_master")["physicians"].content_version == physicians_v2
    assert mesh.run_job("physician_dw").success
    dw_dim = served("physician_dw")["dim_physician"]
    assert dw_dim.lineage[PHYSICIANS] == physicians_v2

    refused = mesh.run_job("brand_analytics")
    assert not refused.success
    message = failure_text(refused)
    assert "data drift" in message
    assert f"{PHYSICIANS} v{physicians_v1} -> payer_dw/dim_physician v{payer_dim.version}" in (
        message
    )
    assert f"{PHYSICIANS} v{physicians_v2} -> physician_dw/dim_physician v{dw_dim.version}" in (
        message
    )
    assert "mesh build --domain payer_dw" in message
    assert served("brand_analytics")["physician_segments"].version == segments_v1  # still served

    # the dev variation reads the newest set of versions that agree: the older physician_dw
    with environment(MESH_ENV="dev"):
        pinned = mesh.run_job("brand_analytics")
    assert pinned.success, failure_text(pinned)
    segments_v2 = served("brand_analytics")["physician_segments"].version
    info = commit_info("brand_analytics", segments_v2)
    assert info["lineage"][PHYSICIANS] == physicians_v1
    repinned = info["repinned_for_consistency"]
    assert repinned["physician_dw/dim_physician"][0] == dw_dim.version
    assert repinned["physician_dw/dim_physician"][1] < dw_dim.version
    assert "payer_dw/dim_physician" not in repinned

    # payer_dw catches up: the CI build publishes from the newest versions
    assert mesh.run_job("payer_dw").success
    caught_up = mesh.run_job("brand_analytics")
    assert caught_up.success, failure_text(caught_up)
    info = commit_info("brand_analytics", served("brand_analytics")["physician_segments"].version)
    assert info["lineage"][PHYSICIANS] == physicians_v2
    assert info["input_versions"]["physician_dw/dim_physician"] == dw_dim.version
    assert "repinned_for_consistency" not in info
