"""The workspace: every domain is a code location that loads, and the global asset graph links
domains across code locations (what the Dagster UI shows)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.test.utils import execute_dagster_graphql

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "snapshots" / "definitions.json"
LOCATIONS = [
    e["python_module"] for e in yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
]


def _snapshot_of(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "materializable": node.is_materializable,
            "group": node.group_name,
            "owners": list(node.owners),
            "kinds": sorted(node.kinds),
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
        }
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs),
    }


@pytest.mark.parametrize("entry", LOCATIONS, ids=[e["location_name"] for e in LOCATIONS])
def test_every_workspace_entry_loads(entry):
    """Each code location module imports and yields valid Definitions."""
    module = importlib.import_module(entry["module_name"])
    dg.Definitions.validate_loadable(module.defs)


def test_snapshot_of_all_asset_keys_and_checks():
    """Accidental renames of ports, checks, jobs or sensors show up as a diff here.

    After an intended change: MESH_UPDATE_SNAPSHOTS=1 pytest tests/test_workspace.py
    """
    current = {
        e["location_name"]: _snapshot_of(importlib.import_module(e["module_name"]).defs)
        for e in LOCATIONS
    }
    if os.environ.get("MESH_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_port_has_a_blocking_contract_check_and_the_automation_policy():
    """Contracts block downstream; ports run eagerly only after upstream contracts pass."""
    for entry in LOCATIONS:
        defs = importlib.import_module(entry["module_name"]).defs
        graph = defs.resolve_asset_graph()
        domain = entry["location_name"]
        ports = [k for k in graph.get_all_asset_keys() if k.path[0] == domain]
        assert ports
        for key in ports:
            node = graph.get(key)
            check = graph.get_check_spec(dg.AssetCheckKey(key, "contract"))
            assert check.blocking
            assert "all_deps_blocking_checks_passed" in str(node.automation_condition)
            assert node.group_name == domain and node.owners


@pytest.mark.slow
def test_dagster_cli_validates_the_workspace(tmp_path):
    """`dagster definitions validate -w workspace.yaml` passes, as the README says."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


@pytest.mark.slow
def test_ui_asset_graph_links_domains_across_code_locations(tmp_path):
    """The webserver's GraphQL asset graph shows physician_dw's ports depending on
    physician_master's port, which lives (and is materializable) in another code location."""
    with (
        dg.instance_for_test(temp_dir=str(tmp_path)) as instance,
        WorkspaceProcessContext(
            instance, WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")])
        ) as workspace,
    ):
        request = workspace.create_request_context()
        query = """{ assetNodes { assetKey { path } isMaterializable
                     repository { location { name } } dependencyKeys { path } } }"""
        result = execute_dagster_graphql(request, query)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in result.data["assetNodes"]}
    upstream = nodes["physician_master/physicians"]
    assert upstream["repository"]["location"]["name"] == "physician_master"
    assert upstream["isMaterializable"]
    for port in ("dim_physician", "fact_rx_weekly"):
        node = nodes[f"physician_dw/{port}"]
        assert node["repository"]["location"]["name"] == "physician_dw"
        assert ["physician_master", "physicians"] in [d["path"] for d in node["dependencyKeys"]]
