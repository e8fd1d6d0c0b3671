"""The main job from the command line: `mesh generate`, `mesh build`, `mesh status`, run as a
user runs them, against a Dagster home and a data root of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

pytestmark = pytest.mark.slow
MESH = str(Path(sys.executable).parent / "mesh")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {
        **os.environ,
        "MESH_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "COLUMNS": "160",
    }


def mesh(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MESH, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def status(env) -> dict[tuple[str, str], dict]:
    result = mesh(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {(r["domain"], r["port"]): r for r in json.loads(result.stdout)}


def test_build_status_rebuild_and_contract_failure(env):
    """Build the whole mesh in order, print the table, rebuild to new versions (old ones stay
    readable), then fail on a corrupt delivery without touching the published versions."""
    generated = mesh(env, "generate", "--scale", "0.02", "--seed", "3")
    assert generated.returncode == 0, generated.stderr

    first = mesh(env, "build")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "physician_master built" in first.stdout and "physician_dw built" in first.stdout
    assert first.stdout.index("physician_master built") < first.stdout.index("physician_dw built")
    for name in ("payer_master", "reference", "npp", "payer_dw", "brand_analytics"):
        assert f"{name} built" in first.stdout
    for upstream in ("physician_dw", "payer_dw", "npp"):  # the third level waits for both
        assert first.stdout.index(f"{upstream} built") < first.stdout.index("brand_analytics built")
    for port in ("physicians", "physician_xref", "dim_physician", "fact_rx_weekly", "kpi_weekly"):
        assert port in first.stdout
    # physician mastering reports its match rate and what it could not match
    assert "physician_master: crm_accounts" in first.stdout
    assert "crm_match_rate" in first.stdout and "crm_unmatched" in first.stdout
    v1 = status(env)
    assert {d for d, _ in v1} == {
        "physician_master", "payer_master", "reference", "npp",
        "physician_dw", "payer_dw", "brand_analytics",
    }  # fmt: skip
    assert all(r["state"] == "published" and r["version"] for r in v1.values()), v1
    assert all(r["rows"] > 0 for r in v1.values()), {k: r["rows"] for k, r in v1.items()}

    one = mesh(env, "build", "--domain", "physician_master")
    assert one.returncode == 0, one.stdout + one.stderr
    assert "physician_dw" not in one.stdout.split("mesh build")[-1]
    v2 = status(env)  # a rebuild is a new version of the same content; no other domain moved
    for key in v1:
        rebuilt = key[0] == "physician_master"
        assert (v2[key]["version"] > v1[key]["version"]) == rebuilt, key
        assert v2[key]["rows"] == v1[key]["rows"]

    listed = mesh(env, "versions", "physician_master/physicians")
    assert listed.returncode == 0
    old = v1[("physician_master", "physicians")]["version"]
    shown = mesh(env, "show", "physician_master/physicians", "--version", str(old), "--limit", "2")
    assert shown.returncode == 0 and f"@ version {old}" in shown.stdout and "MP" in shown.stdout

    ama = sorted((Path(env["MESH_DATA_DIR"]) / "landing" / "ama_physician").glob("*/*.csv"))[-1]
    lines = ama.read_text().splitlines()
    ama.write_text("\n".join([*lines, lines[1]]) + "\n")  # the same physician twice
    failed = mesh(env, "build")
    assert failed.returncode == 1
    out = " ".join(failed.stdout.split())  # rich wraps long lines
    for part in (
        "physician_master",
        "physicians",
        "ama_physician",
        "'npi'",
        "unique",
        "physician_dw skipped",
    ):
        assert part in out, part
    # nothing that reads the master was published, nothing of the previous versions lost;
    # the domains that do not depend on it built as usual (a failure skips only its downstream)
    after = status(env)
    for d in ("physician_master", "physician_dw", "payer_dw", "brand_analytics"):
        assert {k: r for k, r in after.items() if k[0] == d} == {
            k: r for k, r in v2.items() if k[0] == d
        }
    assert after[("npp", "channel_mix")]["version"] > v2[("npp", "channel_mix")]["version"]
    kept = mesh(env, "quarantine")
    assert kept.returncode == 0 and "ama_physician" in kept.stdout and "npi: unique" in kept.stdout

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        jobs = {r.job_name for r in instance.get_runs()}
    assert {"build_physician_master", "build_physician_dw"} <= jobs


def test_status_before_any_build_says_never_built(tmp_path):
    """`mesh status` on a new instance lists every port as never built, exit 0."""
    env = {**os.environ, "MESH_DATA_DIR": str(tmp_path / "d"), "DAGSTER_HOME": str(tmp_path / "h")}
    rows = status(env)
    assert rows and all(r["state"] == "never built" for r in rows.values())
