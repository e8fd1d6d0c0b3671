"""The canary variation: the same code, on the subset the descriptor declares, published into
the canary namespace of each lake; a consumer that runs as canary reads it, production
readers see byte-for-byte what they saw before."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pytest

from mesh_domains.platform import lake
from mesh_domains.platform.build import build_mesh
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.settings import mesh_paths

pytestmark = pytest.mark.slow
PORTS = [
    ("physician_master", "physicians"),
    ("physician_dw", "dim_physician"),
    ("physician_dw", "fact_rx_weekly"),
]


def read(consumer: str = "brand_analytics") -> dict[str, bytes]:
    """What a reader gets from each port: every row, in a fixed order, as bytes."""
    domains = discover_domains()
    con = lake.connect()
    out = {}
    for producer, port in PORTS:
        view, version = lake.open_port(con, consumer, domains[producer], port)
        rows = con.execute(f"select * from {view} order by all").fetchall()
        out[f"{producer}/{port}"] = json.dumps([version, rows], default=str).encode()
    con.close()
    return out


def test_canary_publishes_apart_and_production_readers_see_no_change(
    built_mesh, tmp_path, monkeypatch
):
    production = read()
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in production.items()}

    monkeypatch.setenv("MESH_ENV", "canary")
    (tmp_path / "canary_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "canary_home")) as canary:
        report = build_mesh(canary, only=["physician_master", "physician_dw"])
        assert report.ok, [r.error for r in report.results]
        event = canary.get_latest_materialization_event(
            dg.AssetKey(["physician_master", "physicians"])
        )
        variation = event.asset_materialization.metadata["variation_detail"].value
    assert variation == {"env": "canary", "params": {"states": "MA,NY,CA"}}
    canary_lake = mesh_paths().lake_dir("physician_master")
    assert canary_lake.parts[-2:] == ("physician_master", "canary")
    seen_by_canary = read()  # a canary consumer opts in: it reads the canary lakes
    states = {
        row[7]  # state
        for row in json.loads(seen_by_canary["physician_master/physicians"])[1]
        if row[7] is not None
    }
    assert states <= {"MA", "NY", "CA"} and states
    dim = json.loads(seen_by_canary["physician_dw/dim_physician"])[1]
    physicians = json.loads(seen_by_canary["physician_master/physicians"])[1]
    assert (
        len(dim) == len(physicians) < len(json.loads(production["physician_master/physicians"])[1])
    )

    monkeypatch.setenv("MESH_ENV", "ci")  # production readers
    after = read()
    assert {k: hashlib.sha256(v).hexdigest() for k, v in after.items()} == digests
    assert after == production
